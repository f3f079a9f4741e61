package consumer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// A callback sees each batch's records in ring memory, valid until it
// returns: it decodes what it needs and copies what it keeps. The callback
// is plain Go, so it runs here on a batch made by hand, as Consumer.Read
// would hand it over.
func ExampleBatch() {
	var sum uint64
	var kept [][]byte
	handle := func(b consumer.Batch) {
		for _, raw := range b.Records {
			sum += binary.NativeEndian.Uint64(raw)
			if len(raw) > 8 {
				kept = append(kept, bytes.Clone(raw[8:])) // never raw itself
			}
		}
	}

	handle(consumer.Batch{Records: [][]byte{
		binary.NativeEndian.AppendUint64(nil, 40),
		append(binary.NativeEndian.AppendUint64(nil, 2), "hello"...),
	}})
	fmt.Println(sum, len(kept), string(kept[0]))
	// Output: 42 1 hello
}

// Wakeups lists the modes a program offers its users; the producers must
// be loaded with the same one as Config.Wakeup.
func ExampleWakeups() {
	for _, w := range consumer.Wakeups() {
		fmt.Println(w)
	}
	// Output:
	// adaptive
	// every
	// busy
}

// Reading a BPF_MAP_TYPE_RINGBUF that a program loaded with cilium/ebpf
// (events stands for objs.Events of a bpf2go loader). It needs the kernel,
// and CAP_BPF or root for the program that made the map.
func Example() {
	var events *ebpf.Map // objs.Events
	c, err := consumer.Open(consumer.RingBuffer("events", events))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx := context.Background()
	for {
		_, err := c.Read(ctx, func(b consumer.Batch) {
			for _, raw := range b.Records {
				fmt.Println(len(raw)) // decode raw here; it is ring memory
			}
		})
		if errors.Is(err, consumer.ErrClosed) || errors.Is(err, context.Canceled) {
			return
		}
		if err != nil {
			fmt.Println(err) // wraps consumer.ErrCorrupt for a broken ring
			return
		}
	}
}

// A perf event array is read as one ring per CPU.
func ExamplePerfBuffer() {
	var array *ebpf.Map // a BPF_MAP_TYPE_PERF_EVENT_ARRAY
	var rings []consumer.Ring
	for _, cpu := range []int{0, 1, 2, 3} { // the online CPUs
		rings = append(rings, consumer.PerfBuffer(fmt.Sprintf("cpu%d", cpu), array, cpu, 64<<10))
	}
	c, err := consumer.Open(rings...)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	// Drain reads what is there without waiting, after the producers stop.
	n, err := c.Drain(func(consumer.Batch) {})
	fmt.Println(n, err, c.Stats()[0].KernelLost)
}
