// Package privilege knows which Linux capabilities each phase of
// `ringwatch run` needs, and drops the rest once the producers are
// attached.
//
// Two phases:
//
//   - [Load]: loading the BPF programs and maps and attaching them. CAP_BPF
//     to create maps and load programs, CAP_PERFMON for tracing programs,
//     perf events and the pointer-reading helpers they call, and
//     CAP_DAC_READ_SEARCH to read the exec tracepoint's id under tracefs,
//     whose directory is mode 0700 root (not needed by root itself, which
//     owns it). The kernel charges BPF memory to the memory cgroup since
//     Linux 5.11, so no CAP_SYS_RESOURCE is needed for RLIMIT_MEMLOCK.
//   - [Run]: everything after attaching: reading the rings through their
//     mappings, waiting in epoll, running the control program on the user
//     ring (BPF_PROG_RUN on a program fd already held), reading the maps'
//     counters and the programs' stats by fd, serving HTTP and the control
//     socket. All of these work on file descriptors the process already
//     holds, and the kernel checks no capability for them: the set is
//     empty. The host ring census and program statistics add [Census]
//     while they run.
//
// [Drop] keeps only the given set, in the permitted, effective,
// inheritable, ambient and (when the process may change it) bounding
// sets, on every thread of the process: Linux keeps capabilities per
// thread, and the Go runtime runs many, so Drop goes through
// [syscall.AllThreadsSyscall]. That refuses binaries linked with cgo, so a
// ringwatch that is to drop its capabilities is built with CGO_ENABLED=0
// (as `make build` does); elsewhere Drop returns [ErrCgo].
//
// The systemd unit in deploy/systemd grants [Load] as ambient capabilities
// and bounds the service to it; a test holds the unit to these lists.
package privilege
