package userring_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/pkg/userring"
)

// Each error of a Writer says what the caller does next. A Writer needs a
// BPF_MAP_TYPE_USER_RINGBUF, so this runnable example shows only the
// errors, as Write returns them.
func ExampleErrFull() {
	for _, err := range []error{
		userring.ErrFull,
		fmt.Errorf("sample of 32 MiB: %w", userring.ErrTooLarge),
		userring.ErrClosed,
	} {
		switch {
		case errors.Is(err, userring.ErrFull):
			fmt.Println("full: retry after the kernel side drains, or use WriteWait")
		case errors.Is(err, userring.ErrTooLarge):
			fmt.Println("too large: no drain makes room; split the message")
		case errors.Is(err, userring.ErrClosed):
			fmt.Println("closed: stop writing")
		}
	}
	// Output:
	// full: retry after the kernel side drains, or use WriteWait
	// too large: no drain makes room; split the message
	// closed: stop writing
}

// Writing to a BPF_MAP_TYPE_USER_RINGBUF that a program loaded with
// cilium/ebpf (messages stands for objs.Messages of a bpf2go loader). It
// needs the kernel (Linux 6.1 or later); a BPF program reads the samples
// with bpf_user_ringbuf_drain when something runs it.
func Example() {
	var messages *ebpf.Map // objs.Messages
	w, err := userring.Open(messages)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()

	// Write copies a message in; WriteWait waits while the ring is full.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := w.WriteWait(ctx, []byte("hello, kernel")); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(w.Stats().Submitted)
}

// Reserve lets a message be written in place, without a copy.
func ExampleWriter_Reserve() {
	var messages *ebpf.Map // objs.Messages
	w, err := userring.Open(messages)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()

	s, err := w.Reserve(16)
	if err != nil {
		fmt.Println(err) // userring.ErrFull until the kernel side drains
		return
	}
	binary.NativeEndian.PutUint64(s.Data[0:], 1) // message type
	binary.NativeEndian.PutUint64(s.Data[8:], uint64(time.Now().UnixNano()))
	w.Submit(s) // or w.Discard(s): exactly one of them, once
}
