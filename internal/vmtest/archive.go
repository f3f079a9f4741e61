package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// untar writes the regular files of the tar stream b that files names
// (member -> destination) to their destinations.
func untar(b []byte, files map[string]string) error {
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read package data: %w", err)
		}
		dst, ok := files[h.Name]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if err = errors.Join(err, f.Close()); err != nil {
			return fmt.Errorf("unpack %s: %w", h.Name, err)
		}
	}
}

// cpioEntry is one member of an initramfs: a directory, a regular file
// (from a file here, or from bytes) or a symbolic link.
type cpioEntry struct {
	name string // without a leading slash
	mode uint32 // permission bits
	dir  bool
	link string // target, for a symbolic link
	src  string // a file whose content this is
	data []byte // or the content itself
}

// writeCPIO writes entries as an uncompressed cpio archive in the "newc"
// format, the one the kernel unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst): each member
// is a 110-byte ASCII header, its NUL-terminated name padded to 4 bytes,
// and its data padded to 4 bytes; "TRAILER!!!" ends the archive. The
// archive is left uncompressed: the guest would spend longer under
// emulation decompressing it than the host spends copying it.
func writeCPIO(path string, entries []cpioEntry) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	ino := uint32(1)
	pad := func(n int) error {
		_, err := w.Write(make([]byte, (4-n%4)%4))
		return err
	}
	put := func(name string, mode uint32, size int, body func() error) error {
		_, err := fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
		ino++
		if err != nil {
			return err
		}
		if _, err := w.WriteString(name + "\x00"); err != nil {
			return err
		}
		if err := pad(110 + len(name) + 1); err != nil {
			return err
		}
		if err := body(); err != nil {
			return err
		}
		return pad(size)
	}
	// Parents first, each once.
	seen := map[string]bool{}
	var sorted []cpioEntry
	for _, e := range entries {
		for d := filepath.Dir(e.name); d != "." && !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
			sorted = append(sorted, cpioEntry{name: d, dir: true, mode: 0o755})
		}
		if e.dir {
			if seen[e.name] {
				continue
			}
			seen[e.name] = true
		}
		sorted = append(sorted, e)
	}
	slices.SortStableFunc(sorted, func(a, b cpioEntry) int {
		return strings.Count(a.name, "/") - strings.Count(b.name, "/")
	})
	for _, e := range sorted {
		switch {
		case e.dir:
			err = put(e.name, 0o040000|e.mode, 0, func() error { return nil })
		case e.link != "":
			err = put(e.name, 0o120000|0o777, len(e.link), func() error {
				_, err := w.WriteString(e.link)
				return err
			})
		case e.src != "":
			var src *os.File
			var st os.FileInfo
			if src, err = os.Open(e.src); err != nil {
				break
			}
			if st, err = src.Stat(); err == nil {
				err = put(e.name, 0o100000|e.mode, int(st.Size()), func() error {
					_, err := io.Copy(w, src)
					return err
				})
			}
			src.Close()
		default:
			err = put(e.name, 0o100000|e.mode, len(e.data), func() error {
				_, err := w.Write(e.data)
				return err
			})
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("write %s into %s: %w", e.name, path, err)
		}
	}
	if err := put("TRAILER!!!", 0, 0, func() error { return nil }); err != nil {
		f.Close()
		return err
	}
	return errors.Join(w.Flush(), f.Close())
}
