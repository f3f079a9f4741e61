// Package ringmap maps a BPF ring buffer's memory into the process: the one
// place that knows the kernel's layout of a BPF_MAP_TYPE_RINGBUF (read by
// pkg/consumer) and of a BPF_MAP_TYPE_USER_RINGBUF (written by
// pkg/userring). The two differ only in which side may write which page.
package ringmap
