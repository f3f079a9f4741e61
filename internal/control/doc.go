// Package control is the user-to-kernel control path of ringwatch: it
// encodes the messages of the kernel's control program (bpf/control.c),
// sends them through the user ring, and lets `ringwatch ctl` reach a
// running `ringwatch run`.
//
//   - messages.go: the message encoding. The Append functions
//     ([AppendPing], [AppendData], [AppendSetPIDs], [AppendSource]) write
//     the layouts of bpf/control.h, whose generated types are in
//     internal/abi, and [ParseReply] reads a ping's answer. Messages are
//     plain bytes, so the encoding is tested without the kernel.
//   - channel.go: [Channel] writes messages with a [userring.Writer], rings
//     the control program's doorbell ([loader.Control.Doorbell]) and reads
//     the answer to a ping from the replies ring with a [consumer.Consumer].
//     [Channel.Apply] sends control messages followed by a ping, so that
//     when it returns the kernel has acted on all of them, in order, and
//     checks from the kernel's own counts that none was rejected.
//     [Channel.Ping] measures the round trip user -> kernel -> user.
//   - socket.go: [Server] serves [Request]s on a unix socket that only root
//     and ringwatch's own user can use (mode 0600 and SO_PEERCRED), and
//     [Send] is the client; [CheckSocket] tells a live socket from a stale
//     one before a run loads anything. The running process stays the user ring's only
//     writer, which the ring's format requires.
//
// [userring.Writer]: https://pkg.go.dev/github.com/ringwatch/ringwatch/pkg/userring#Writer
// [loader.Control.Doorbell]: https://pkg.go.dev/github.com/ringwatch/ringwatch/internal/loader#Control.Doorbell
// [consumer.Consumer]: https://pkg.go.dev/github.com/ringwatch/ringwatch/pkg/consumer#Consumer
package control
