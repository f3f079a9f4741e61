// Package userring writes user-to-kernel BPF rings from Go: it maps a
// BPF_MAP_TYPE_USER_RINGBUF into the process and reserves, submits and
// discards samples in it, in the kernel's format, for a BPF program to read
// with bpf_user_ringbuf_drain. It is the reverse of [pkg/consumer]: there
// the kernel produces and Go consumes; here Go produces and the kernel
// consumes. cilium/ebpf defines the map type but has no writer for it.
//
// The pieces, in the order a sample meets them:
//
//   - ring.go: one BPF_MAP_TYPE_USER_RINGBUF. The mmap of the kernel's page
//     layout (all of this package's unsafe code), and the position
//     arithmetic of a reservation: 8-byte alignment, the busy bit while a
//     sample is being written, the discard bit. It sees only a []byte and
//     two positions, so it is tested on plain Go memory against a model of
//     the kernel's drain.
//   - writer.go: [Writer], the small public type. [Writer.Reserve] returns
//     [ErrFull] at once when the ring has no room; [Writer.ReserveWait]
//     sleeps in epoll until the kernel has drained some, with a context for
//     a timeout. Nothing is dropped silently: a sample is either in the
//     ring or the caller has an error.
//
// Something on the kernel side must call bpf_user_ringbuf_drain for
// samples to move: a Writer only fills the ring. ringwatch's drain is a
// BPF_PROG_TYPE_SYSCALL program run on demand (internal/loader: Control.Doorbell).
//
// [pkg/consumer]: https://pkg.go.dev/github.com/ringwatch/ringwatch/pkg/consumer
package userring
