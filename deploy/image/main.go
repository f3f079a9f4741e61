package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// metricsPort is ringwatch run's default port, which the image exposes.
const metricsPort = "9477/tcp"

func main() {
	binary := flag.String("binary", "", "the ringwatch binaries to put in the image, comma-separated, one per architecture; each must be statically linked (CGO_ENABLED=0)")
	out := flag.String("out", "", "the OCI archive to write")
	version := flag.String("version", "dev", "the image's version label and the tag in its reference name")
	flag.Parse()
	if *binary == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: image --binary bin/ringwatch-static[,bin/ringwatch-static-arm64] --out bin/ringwatch-image.tar [--version v1.2.3]")
		os.Exit(2)
	}
	if err := run(*binary, *out, *version); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(binaries, out, version string) error {
	created, err := sourceDate()
	if err != nil {
		return err
	}
	var imgs []v1.Image
	seen := map[string]string{}
	for binary := range strings.SplitSeq(binaries, ",") {
		exe, err := os.ReadFile(binary)
		if err != nil {
			return fmt.Errorf("read binary: %w", err)
		}
		arch, err := staticArch(exe)
		if err != nil {
			return fmt.Errorf("%s: %w", binary, err)
		}
		if other, ok := seen[arch]; ok {
			return fmt.Errorf("%s and %s are both for %s: give one binary per architecture", other, binary, arch)
		}
		seen[arch] = binary
		img, err := build(exe, arch, version, created)
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create image archive: %w", err)
	}
	if err := writeOCIArchive(f, imgs, version, created); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	return f.Close()
}

// sourceDate is SOURCE_DATE_EPOCH, the reproducible-builds convention for
// the time to stamp on what a build makes.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: give seconds since 1970: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// staticArch returns the GOARCH name of a statically linked Linux binary,
// and refuses one that needs a dynamic loader: the image has no libc.
func staticArch(exe []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		return "", fmt.Errorf("read ELF header: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("binary is dynamically linked: build it with CGO_ENABLED=0")
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("binary is for %v, which ringwatch is not built for", f.Machine)
}

// build makes the image: one layer with the binary as /ringwatch, run as
// `ringwatch run` listening on every interface, since a container's
// loopback is its own.
func build(exe []byte, arch, version string, created time.Time) (v1.Image, error) {
	layerTar, err := binaryLayer(exe, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "deploy/image: COPY ringwatch /ringwatch",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Created = v1.Time{Time: created}
	cfg.Config = v1.Config{
		Entrypoint:   []string{"/ringwatch"},
		Cmd:          []string{"run", "--web.listen-address=:9477"},
		ExposedPorts: map[string]struct{}{metricsPort: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "ringwatch",
			"org.opencontainers.image.version": version,
		},
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// binaryLayer is the uncompressed tar of the image's only layer.
func binaryLayer(exe []byte, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     "ringwatch",
		Mode:     0o755,
		Size:     int64(len(exe)),
		ModTime:  created,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if _, err := tw.Write(exe); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	return buf.Bytes(), nil
}

// writeOCIArchive writes imgs as an OCI image layout (image-layout.md of
// the OCI image spec: oci-layout, index.json, blobs/sha256/...) in a tar,
// the index listing each image with its platform. The index names each
// twice, as the tools that read it expect: tag alone in
// org.opencontainers.image.ref.name (skopeo, umoci, podman), and the full
// name ringwatch:tag in io.containerd.image.name (ctr, docker load).
func writeOCIArchive(w io.Writer, imgs []v1.Image, tag string, created time.Time) error {
	tw := tar.NewWriter(w)
	add := func(name string, data []byte) error {
		return writeFile(tw, name, data, created)
	}
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: created, Format: tar.FormatPAX})
	}
	written := map[v1.Hash]bool{}
	blob := func(h v1.Hash, data []byte) error {
		if written[h] {
			return nil
		}
		written[h] = true
		return add("blobs/"+h.Algorithm+"/"+h.Hex, data)
	}

	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	var manifests []v1.Descriptor
	for _, img := range imgs {
		d, err := writeImage(img, blob)
		if err != nil {
			return err
		}
		d.Annotations = map[string]string{
			"org.opencontainers.image.ref.name": tag,
			"io.containerd.image.name":          "docker.io/library/ringwatch:" + tag,
		}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     manifests,
	})
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	return tw.Close()
}

// writeImage writes img's layers, config and manifest with blob and
// returns the manifest's descriptor, with its platform.
func writeImage(img v1.Image, blob func(v1.Hash, []byte) error) (v1.Descriptor, error) {
	var d v1.Descriptor
	layers, err := img.Layers()
	if err != nil {
		return d, fmt.Errorf("list layers: %w", err)
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return d, fmt.Errorf("digest layer: %w", err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return d, fmt.Errorf("compress layer: %w", err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return d, fmt.Errorf("compress layer: %w", err)
		}
		if err := blob(h, data); err != nil {
			return d, err
		}
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return d, fmt.Errorf("encode config: %w", err)
	}
	configHash, err := img.ConfigName()
	if err != nil {
		return d, fmt.Errorf("digest config: %w", err)
	}
	if err := blob(configHash, config); err != nil {
		return d, err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return d, fmt.Errorf("encode manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return d, fmt.Errorf("digest manifest: %w", err)
	}
	if err := blob(digest, manifest); err != nil {
		return d, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return d, fmt.Errorf("read config: %w", err)
	}
	return v1.Descriptor{
		MediaType: types.OCIManifestSchema1,
		Size:      int64(len(manifest)),
		Digest:    digest,
		Platform:  &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture},
	}, nil
}

func writeFile(tw *tar.Writer, name string, data []byte, mtime time.Time) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
