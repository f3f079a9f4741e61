// Package testenv holds what ringwatch's tests need of the machine: checks
// that skip a test the machine cannot run, with the reason, and turn that
// skip into a failure when the CI environment variable is set; snapshots of
// the kernel's BPF objects; and a TestMain that fails on leaked file
// descriptors.
//
//   - testenv.go: Unavailable, RequireBPF, RequireTracefs, RequireCPUs,
//     Snapshot and WaitForObjects, Main.
//   - features.go: RequireSyscallProgs, and the probe of BPF atomics that
//     RequireBPF makes; userring.go: RequireUserRing.
//   - build.go: BuildRingwatch and BuildGetpidloop, built as `make build` does.
//   - child.go: SyscallChild, a process that makes getpid() calls on
//     command, for tests that need syscalls of a known pid and tid.
//   - cert.go: WriteCertificate and WriteFile, for the tests of serving
//     metrics over TLS.
package testenv
