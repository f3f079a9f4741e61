package testenv

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// WithoutCapability runs fn on an OS thread of its own that has dropped
// capability (unix.CAP_SYS_ADMIN, ...) from its effective set, and returns
// fn's error. Capabilities are per thread, and the thread exits with fn,
// so the rest of the process keeps them.
func WithoutCapability(capability int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- fmt.Errorf("capget: %w", err)
			return
		}
		data[capability/32].Effective &^= 1 << (capability % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- fmt.Errorf("capset: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}
