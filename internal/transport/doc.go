// Package transport has one type per way records travel from ringwatch's
// BPF producers to its consumer: ringbuf, percpu-ringbuf, perfbuf and spsc,
// one file each. A transport owns everything that differs between them:
// the maps it sizes in the producers' object ([Transport.Plan]), what it
// creates beside them, the largest record it carries and how many fit in a
// ring ([Transport.MaxRecord], [Transport.Fits]), which CPU writes to which
// ring, and how its rings are read ([Transport.ReaderConfig], for
// pkg/consumer). internal/loader asks it for its maps, pkg/consumer opens what
// it hands over, and internal/bench asks it what fits.
//
// Adding a transport is adding a file here (and its programs in
// bpf/transport.h and bpf/ringwatch.c): [New] finds it by name, and
// nothing else switches on a transport's name.
package transport
