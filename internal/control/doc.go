// Package control is the user-to-kernel control path of ringwatch: it
// encodes the messages of the kernel's control program (bpf/control.c),
// sends them through the user ring, and lets `ringwatch ctl` reach a
// running `ringwatch run`.
//
// Messages are plain bytes in the layouts of bpf/control.h (the Append
// functions, and [ParseReply] for a ping's answer), so the encoding is
// tested without the kernel. A [Channel] writes them with a
// [userring.Writer], rings the control program's doorbell
// ([loader.ControlProgram.Doorbell]) and reads a ping's answer from the replies
// ring with a [consumer.Consumer]. [Channel.Apply] sends messages followed
// by a ping, so that when it returns the kernel has acted on all of them,
// in order, and checks from the kernel's own counts that none was rejected.
//
// A [Server] serves [Request]s on a unix socket that only root and
// ringwatch's own user can use (mode 0600 and SO_PEERCRED), and [Send] is
// the client ([SendActions] as `ringwatch ctl` uses it): the running
// process stays the user ring's only writer, which the ring's format
// requires.
//
// [userring.Writer]: https://pkg.go.dev/github.com/ringwatch/ringwatch/pkg/userring#Writer
// [loader.ControlProgram.Doorbell]: https://pkg.go.dev/github.com/ringwatch/ringwatch/internal/loader#ControlProgram.Doorbell
// [consumer.Consumer]: https://pkg.go.dev/github.com/ringwatch/ringwatch/pkg/consumer#Consumer
package control
