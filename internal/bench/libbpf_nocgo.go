//go:build libbpf && !cgo

package bench

// Without cgo, the go command leaves libbpf.go out and would build a bench
// without its libbpf peer, silently: this stops the build instead, naming
// the fix. Build with CGO_ENABLED=1 and libbpf-dev installed.
var _ = theLibbpfTagNeedsCgo_SetCGO_ENABLED1
