module github.com/ringwatch/ringwatch

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	golang.org/x/sys v0.49.0
)

require golang.org/x/net v0.56.0 // indirect

tool github.com/cilium/ebpf/cmd/bpf2go
