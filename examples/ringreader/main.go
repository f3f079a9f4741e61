package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/pkg/consumer"
)

func main() {
	count := flag.Uint("n", 1000, "records for the BPF program to write, at most 4096")
	seed := flag.Uint("seed", 7, "each record's value is seed * (seq + 1)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	written, records, err := run(ctx, counterRunArgs{Count: uint32(*count), Seed: uint32(*seed)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ringreader: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("the BPF program wrote %d records; read %d, checksum %#x\n",
		written, len(records), checksum(records))
}

// run loads counter.c, has write_records write args.Count records into its
// ring buffer, and reads them back with pkg/consumer. It returns how many
// records the program wrote and a copy of every record read, in ring order.
func run(ctx context.Context, args counterRunArgs) (written uint32, records []counterRecord, err error) {
	if err := checkPrivileges(); err != nil {
		return 0, nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; on later
	// ones this does nothing.
	if err := rlimit.RemoveMemlock(); err != nil {
		return 0, nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	var objs counterObjects
	if err := loadCounterObjects(&objs, nil); err != nil {
		return 0, nil, fmt.Errorf("load counter.c: %w", err)
	}
	defer objs.Close()

	// This is all a program that loaded its own BPF objects needs to read
	// a ring buffer: Open, then Read in a loop, then Close.
	c, err := consumer.Open(consumer.RingBuffer("counter", objs.Events))
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()

	var decodeErr error
	collect := func(b consumer.Batch) {
		for _, raw := range b.Records {
			// raw aliases the ring: decode it into a copy before the
			// callback returns and the kernel may write over it.
			var rec counterRecord
			if _, err := binary.Decode(raw, binary.NativeEndian, &rec); err != nil {
				decodeErr = fmt.Errorf("decode record %d of %d bytes: %w", len(records), len(raw), err)
				continue
			}
			records = append(records, rec)
		}
	}

	// A BPF_PROG_TEST_RUN runs the program to its end before it returns:
	// every record it wrote is in the ring by then.
	written, err = objs.WriteRecords.Run(&ebpf.RunOptions{Context: args})
	if err != nil {
		return 0, nil, fmt.Errorf("run write_records: %w", err)
	}
	for len(records) < int(written) && decodeErr == nil {
		if _, err := c.Read(ctx, collect); err != nil {
			return written, records, fmt.Errorf("read ring: %w", err)
		}
	}
	// Nothing should be left; Drain takes whatever is, without waiting.
	if _, err := c.Drain(collect); err != nil {
		return written, records, fmt.Errorf("drain ring: %w", err)
	}
	return written, records, decodeErr
}

// checksum is the sum of the records' values, modulo 2^64.
func checksum(records []counterRecord) uint64 {
	var sum uint64
	for _, r := range records {
		sum += r.Value
	}
	return sum
}

// checkPrivileges fails, saying what to do, unless this process may create
// a BPF_MAP_TYPE_RINGBUF and load a BPF_PROG_TYPE_SYSCALL program: both
// need CAP_BPF, or CAP_SYS_ADMIN, which root has (kernel/bpf/syscall.c,
// map_create and bpf_prog_load).
func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read process capabilities: %w", err)
	}
	return privilegesFrom(uint64(data[0].Effective) | uint64(data[1].Effective)<<32)
}

// privilegesFrom judges a set of effective capabilities.
func privilegesFrom(effective uint64) error {
	if effective&(1<<unix.CAP_SYS_ADMIN|1<<unix.CAP_BPF) != 0 {
		return nil
	}
	return fmt.Errorf("%w: loading BPF programs needs root (or CAP_BPF), which this process lacks: run ringreader with sudo",
		os.ErrPermission)
}
