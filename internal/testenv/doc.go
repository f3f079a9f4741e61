// Package testenv holds what ringwatch's tests need of the machine: checks
// that skip a test the machine cannot run (kernel features, capabilities,
// CPUs, tracefs), with the reason, and turn that skip into a failure when
// the CI environment variable is set; snapshots of the kernel's BPF
// objects; a TestMain that fails on leaked file descriptors; the binaries
// tests run, built as `make build` does; and child processes that make
// system calls on command, for tests that need a known pid and tid. And
// the probes a test of the kernel side needs: whether a thread sleeps in
// epoll, a thread without a capability, exec paths of chosen lengths; and
// certificates for the tests that serve metrics over TLS.
package testenv
