package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// ociDescriptor, ociManifest and ociConfig are the parts of the OCI image
// spec's JSON documents the test reads, decoded here with the standard
// library rather than the library that wrote them.
type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"` // of index.json's manifests
}

type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
	Manifests     []ociDescriptor `json:"manifests"` // of index.json
}

type ociConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// TestImage reads the OCI archive `make image` writes: every
// blob is what its digest says, the entrypoint is /ringwatch, and the one
// layer holds exactly the static binary make built, executable.
func TestImage(t *testing.T) {
	bin := ringwatchBinary(t)
	archive := imageArchive
	dir := t.TempDir()

	files := readTar(t, mustOpen(t, archive))
	if layoutFile := files["oci-layout"]; !bytes.Contains(layoutFile, []byte(`"imageLayoutVersion":"1.0.0"`)) {
		t.Errorf("oci-layout: %q", layoutFile)
	}
	blob := func(t *testing.T, d ociDescriptor) []byte {
		t.Helper()
		hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
		b, found := files["blobs/sha256/"+hexDigest]
		if !ok || !found {
			t.Fatalf("no blob for %s", d.Digest)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexDigest || int64(len(b)) != d.Size {
			t.Fatalf("blob %s: sha256 %x, %d bytes; its descriptor says %d bytes", d.Digest, sum, len(b), d.Size)
		}
		return b
	}

	var index ociManifest
	decodeJSON(t, "index.json", files["index.json"], &index)
	// make image builds one image per architecture of IMAGE_ARCHES: the
	// host's binary is STATIC_BIN, the others STATIC_BIN-ARCH.
	wantArch := map[string]string{"amd64": bin + "-amd64", "arm64": bin + "-arm64"}
	wantArch[runtime.GOARCH] = bin
	if len(index.Manifests) != len(wantArch) {
		t.Fatalf("index.json lists %d manifests, want one for each of %v", len(index.Manifests), slices.Collect(maps.Keys(wantArch)))
	}
	seen := map[string]bool{}
	for _, m := range index.Manifests {
		if m.Platform.OS != "linux" || wantArch[m.Platform.Architecture] == "" || seen[m.Platform.Architecture] {
			t.Fatalf("index.json lists a manifest for %s/%s: want one each for linux/amd64 and linux/arm64", m.Platform.OS, m.Platform.Architecture)
		}
		seen[m.Platform.Architecture] = true
		t.Run(m.Platform.Architecture, func(t *testing.T) {
			checkImage(t, m, blob, wantArch[m.Platform.Architecture], m.Platform.Architecture == runtime.GOARCH)
		})
	}

	// go-containerregistry reads the unpacked layout back as a registry
	// client would, and checks the index, manifest and config agree (the
	// layer's contents were checked above; Fast skips reading it again).
	unpacked := filepath.Join(dir, "layout")
	for name, data := range files {
		p := filepath.Join(unpacked, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(unpacked)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx, validate.Fast); err != nil {
		t.Errorf("the archive does not validate: %v", err)
	}
}

// checkImage checks the image of one platform d names: its manifest and
// config, and that its one layer holds exactly the static binary bin, for
// that architecture; runs says bin runs here.
func checkImage(t *testing.T, d ociDescriptor, blob func(*testing.T, ociDescriptor) []byte, bin string, runs bool) {
	if got := d.Annotations["org.opencontainers.image.ref.name"]; got != imageVersion {
		t.Errorf("ref.name %q, want the VERSION given to make", got)
	}
	var manifest ociManifest
	decodeJSON(t, "manifest", blob(t, d), &manifest)
	if manifest.MediaType != "application/vnd.oci.image.manifest.v1+json" || manifest.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("manifest %s with config %s: want OCI media types", manifest.MediaType, manifest.Config.MediaType)
	}
	var config ociConfig
	decodeJSON(t, "config", blob(t, manifest.Config), &config)
	if !slices.Equal(config.Config.Entrypoint, []string{"/ringwatch"}) {
		t.Errorf("entrypoint %q, want [/ringwatch]", config.Config.Entrypoint)
	}
	if len(config.Config.Cmd) == 0 || config.Config.Cmd[0] != "run" {
		t.Errorf("cmd %q: want ringwatch run", config.Config.Cmd)
	}
	if _, ok := config.Config.ExposedPorts["9477/tcp"]; !ok {
		t.Errorf("exposed ports %v, want 9477/tcp", config.Config.ExposedPorts)
	}
	if config.OS != "linux" || config.Architecture != d.Platform.Architecture {
		t.Errorf("platform %s/%s", config.OS, config.Architecture)
	}

	if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 {
		t.Fatalf("%d layers, %d diff_ids: want 1", len(manifest.Layers), len(config.RootFS.DiffIDs))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layerTar, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(layerTar); "sha256:"+hex.EncodeToString(sum[:]) != config.RootFS.DiffIDs[0] {
		t.Errorf("layer's uncompressed sha256 %x, config's diff_id %s", sum, config.RootFS.DiffIDs[0])
	}
	tr := tar.NewReader(bytes.NewReader(layerTar))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "ringwatch" || hdr.Mode&0o111 == 0 || hdr.Typeflag != tar.TypeReg {
		t.Errorf("layer holds %q mode %o type %c, want the executable ringwatch", hdr.Name, hdr.Mode, hdr.Typeflag)
	}
	inImage, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("the layer holds more than ringwatch: %v", err)
	}
	built, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(inImage, built) {
		t.Errorf("the image's /ringwatch (%d bytes) is not the binary make built (%d bytes)", len(inImage), len(built))
	}
	// The image has no libc: the binary must not ask for a dynamic loader.
	f, err := elf.NewFile(bytes.NewReader(inImage))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/ringwatch is dynamically linked: the image has no libc")
		}
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[d.Platform.Architecture]
	if f.Machine != machine {
		t.Errorf("/ringwatch of the %s image is for %v", d.Platform.Architecture, f.Machine)
	}
	// And it is ringwatch: it names its version.
	if runs {
		out, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "ringwatch "+imageVersion+" ") {
			t.Errorf("ringwatch version: %q %v", out, err)
		}
	}

}

func mustOpen(t *testing.T, path string) io.Reader {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// readTar returns the regular files of a tar by name.
func readTar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = b
	}
}

func decodeJSON(t *testing.T, what string, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b)
	}
}
