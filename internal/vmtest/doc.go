// Command vmtest boots Debian's kernels under qemu and runs ringwatch's
// root tests inside them: `make vmtest` runs it. For each target of the
// matrix (plan.go) it fetches the kernel by package name from Debian's
// archive (debian.go, cached), builds the test binaries static (go test
// -c, CGO_ENABLED=0, for the target's architecture), packs them with
// busybox and an init script into an initramfs (archive.go, guest.go),
// boots it (qemu.go) and reads each test binary's exit status from the
// console. It prints a table of the results and exits 1 if any test
// failed, with the kernel, architecture, CPU count, test and output of
// each failure.
//
// A boot that dies before its first test (qemu's multi-threaded TCG
// sometimes panics a 16-CPU x86 guest during SMP text patching) is
// booted again, up to --retries times, and the output says so; a test
// that failed is never run again.
//
//	go run ./internal/vmtest                       # the whole matrix
//	go run ./internal/vmtest --targets 6.12-amd64-2 --live
//	go run ./internal/vmtest --list
package main
