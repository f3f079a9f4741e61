package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// archive is an apt configuration of the harness's own, under cacheDir/apt:
// its own sources list (Debian's bullseye, bookworm, trixie and sid, amd64
// and arm64), package lists, download cache and an empty dpkg status, so
// apt-get download reaches every suite without touching the machine's
// /etc/apt. APT_CONFIG names the file, and Dir::Etc::Parts points away from
// /etc/apt/apt.conf.d, whose settings (extra index targets, a proxy)
// belong to the machine.
type archive struct {
	dir     string // cacheDir/apt
	updated bool
}

// suites are the Debian suites the matrix takes kernels from.
var suites = []string{"bullseye", "bookworm", "trixie", "sid"}

func newArchive(cacheDir string) (*archive, error) {
	a := &archive{dir: filepath.Join(cacheDir, "apt")}
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts", "empty"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var src strings.Builder
	for _, s := range suites {
		fmt.Fprintf(&src, "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n", s)
	}
	// Valid-Until is not checked: sid's Release file may be served past it
	// by a mirror, and the packages are still signed.
	conf := fmt.Sprintf(`Dir::Etc::Parts "%[1]s/parts";
Dir::Etc::SourceList "%[1]s/sources.list";
Dir::Etc::SourceParts "%[1]s/empty";
Dir::Etc::Preferences "%[1]s/empty/none";
Dir::Etc::PreferencesParts "%[1]s/empty";
Dir::State::Lists "%[1]s/lists";
Dir::State::status "%[1]s/empty/status";
Dir::Cache "%[1]s/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; "arm64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::Check-Valid-Until "false";
`, a.dir)
	files := map[string]string{"sources.list": src.String(), "apt.conf": conf, "empty/status": ""}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(a.dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// apt runs an apt tool under the archive's configuration.
func (a *archive) apt(dir string, tool string, args ...string) ([]byte, error) {
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "APT_CONFIG="+filepath.Join(a.dir, "apt.conf"), "DEBIAN_FRONTEND=noninteractive")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// update fetches the package lists, once per run of the harness.
func (a *archive) update() error {
	if a.updated {
		return nil
	}
	logf("apt: updating the harness's own package lists (%s)", a.dir)
	if _, err := a.apt(a.dir, "apt-get", "update", "-q"); err != nil {
		return err
	}
	a.updated = true
	return nil
}

// show returns a field of a package's record in suite, as apt-cache show
// prints it for name/suite ("linux-image-amd64/bookworm").
func (a *archive) show(pkg, suite, field string) (string, error) {
	out, err := a.apt(a.dir, "apt-cache", "show", pkg+"/"+suite)
	if err != nil {
		return "", err
	}
	// apt-cache show may print several records (versions); the first is
	// the suite's.
	rec, _, _ := bytes.Cut(out, []byte("\n\n"))
	for line := range strings.SplitSeq(string(rec), "\n") {
		if v, ok := strings.CutPrefix(line, field+": "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("apt-cache show %s/%s: no %s field", pkg, suite, field)
}

// download fetches pkg/suite's .deb into dir and returns its path.
func (a *archive) download(dir, pkg, suite string) (string, error) {
	if _, err := a.apt(dir, "apt-get", "download", "-q", pkg+"/"+suite); err != nil {
		return "", err
	}
	name, _, _ := strings.Cut(pkg, ":")
	debs, _ := filepath.Glob(filepath.Join(dir, name+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s/%s left %d .deb files in %s", pkg, suite, len(debs), dir)
	}
	return debs[0], nil
}

// depends lists the package names in a Depends field, first alternative
// of each, without versions.
func depends(field string) []string {
	var names []string
	for dep := range strings.SplitSeq(field, ",") {
		first, _, _ := strings.Cut(dep, "|")
		name, _, _ := strings.Cut(strings.TrimSpace(first), " ")
		if name != "" {
			names = append(names, name)
		}
	}
	return names
}

// kernelPackage matches the versioned image of a linux-image-ARCH
// metapackage: linux-image-6.1.0-50-amd64, linux-image-7.2.13+deb14-amd64.
var kernelPackage = regexp.MustCompile(`^linux-image-[0-9].*-(amd64|arm64)$`)

// debianKernel is one kernel of Debian's, unpacked into the cache: its
// compressed image, its build configuration and the package version.
type debianKernel struct {
	Release string // uname -r: 6.1.0-50-amd64
	Version string // the package's: 6.1.176-1
	Image   string // path of the vmlinuz
	Config  string // path of the config
}

// fetchKernel returns suite's kernel for arch, unpacked under
// cacheDir/kernels/SUITE-ARCH; it downloads it only if that folder does not
// hold one yet. Debian's linux-image-ARCH metapackage names the versioned
// linux-image-RELEASE; up to trixie that package holds /boot/vmlinuz-RELEASE
// and /boot/config-RELEASE, and from forky on it is itself a metapackage
// whose linux-binary-RELEASE holds /usr/lib/modules/RELEASE/vmlinuz and
// whose linux-base-RELEASE holds the config beside it.
func fetchKernel(a *archive, cacheDir, suite, arch string) (debianKernel, error) {
	dir := filepath.Join(cacheDir, "kernels", suite+"-"+arch)
	k := debianKernel{Image: filepath.Join(dir, "vmlinuz"), Config: filepath.Join(dir, "config")}
	if b, err := os.ReadFile(filepath.Join(dir, "release")); err == nil {
		k.Release, k.Version, _ = strings.Cut(strings.TrimSpace(string(b)), " ")
		if _, err := os.Stat(k.Image); err == nil {
			return k, nil
		}
	}
	if err := a.update(); err != nil {
		return k, err
	}
	qual := ""
	if arch != "amd64" {
		qual = ":" + arch
	}
	meta := "linux-image-" + arch
	deps, err := a.show(meta+qual, suite, "Depends")
	if err != nil {
		return k, err
	}
	var image string
	for _, d := range depends(deps) {
		if kernelPackage.MatchString(d) {
			image = d
		}
	}
	if image == "" {
		return k, fmt.Errorf("%s/%s depends on no linux-image-RELEASE-%s: %s", meta, suite, arch, deps)
	}
	k.Release = strings.TrimPrefix(image, "linux-image-")
	if k.Version, err = a.show(meta+qual, suite, "Version"); err != nil {
		return k, err
	}
	tmp, err := os.MkdirTemp(cacheDir, "download-")
	if err != nil {
		return k, err
	}
	defer os.RemoveAll(tmp)
	logf("apt: downloading %s (%s) from %s for %s", image, k.Version, suite, arch)
	pkgs := []string{image}
	if deps, err := a.show(image+qual, suite, "Depends"); err == nil {
		for _, d := range depends(deps) {
			if strings.HasPrefix(d, "linux-binary-") || strings.HasPrefix(d, "linux-base-") {
				pkgs = append(pkgs, d)
			}
		}
	}
	files := map[string]string{
		"./boot/vmlinuz-" + k.Release:                 k.Image,
		"./boot/config-" + k.Release:                  k.Config,
		"./usr/lib/modules/" + k.Release + "/vmlinuz": k.Image,
		"./usr/lib/modules/" + k.Release + "/config":  k.Config,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return k, err
	}
	for _, p := range pkgs {
		deb, err := a.download(tmp, p+qual, suite)
		if err != nil {
			return k, err
		}
		if err := extract(deb, files); err != nil {
			return k, err
		}
		os.Remove(deb)
	}
	for _, f := range []string{k.Image, k.Config} {
		if _, err := os.Stat(f); err != nil {
			return k, fmt.Errorf("%s/%s for %s: no %s in %s", image, suite, arch, filepath.Base(f), strings.Join(pkgs, ", "))
		}
	}
	return k, os.WriteFile(filepath.Join(dir, "release"), []byte(k.Release+" "+k.Version+"\n"), 0o644)
}

// fetchBusybox returns Debian's statically linked busybox for arch (from
// bookworm's busybox-static), cached under cacheDir/busybox-ARCH.
func fetchBusybox(a *archive, cacheDir, arch string) (string, error) {
	path := filepath.Join(cacheDir, "busybox-"+arch)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := a.update(); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cacheDir, "download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	logf("apt: downloading busybox-static for %s", arch)
	deb, err := a.download(tmp, "busybox-static:"+arch, "bookworm")
	if err != nil {
		return "", err
	}
	if err := extract(deb, map[string]string{"./bin/busybox": path, "./usr/bin/busybox": path}); err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", errors.New("busybox-static's package holds no busybox")
	}
	return path, os.Chmod(path, 0o755)
}

// extract copies the members of deb named in files (path in the package ->
// path here) out of its data archive; members it lacks are left alone.
func extract(deb string, files map[string]string) error {
	list, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", deb, err)
	}
	return untar(list, files)
}
