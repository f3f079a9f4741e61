// Package epoll is the one wait ringwatch's readers and writers sleep in:
// an epoll set and an eventfd that any goroutine writes to end the wait
// early, on Close or a context's cancellation. pkg/consumer waits in it
// for its rings and its doorbell, pkg/userring for the kernel to drain
// room. What a registered descriptor means, and whether it is level- or
// edge-triggered, stays with the package that registers it.
package epoll
