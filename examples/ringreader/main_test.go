package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRun checks that the example reads exactly what its BPF program wrote:
// as many records, in order, each with the value the program computed.
func TestRun(t *testing.T) {
	testenv.RequireSyscallProgs(t) // the example's producer is a syscall program
	if err := features.HaveProgramType(ebpf.Syscall); err != nil {
		testenv.Unavailable(t, fmt.Sprintf("kernel lacks BPF_PROG_TYPE_SYSCALL (Linux 5.14): %v", err))
	}
	const maxRecords = 4096 // MAX_RECORDS in bpf/counter.h
	for _, tc := range []struct {
		name        string
		count, seed uint32
		want        uint32 // records the program writes
	}{
		{"none", 0, 7, 0},
		{"one", 1, 7, 1},
		{"thousand", 1000, 0x9e3779b9, 1000},
		{"most", maxRecords, 3, maxRecords},
		{"capped", maxRecords + 1000, 5, maxRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			written, records, err := run(ctx, counterRunArgs{Count: tc.count, Seed: tc.seed})
			if err != nil {
				t.Fatal(err)
			}
			if written != tc.want {
				t.Errorf("write_records wrote %d records, want %d", written, tc.want)
			}
			if len(records) != int(tc.want) {
				t.Fatalf("read %d records, want %d", len(records), tc.want)
			}
			var sum uint64
			for i, got := range records {
				want := counterRecord{Seq: uint64(i), Value: uint64(tc.seed) * uint64(i+1)}
				if got != want {
					t.Fatalf("record %d is %+v, want %+v", i, got, want)
				}
				sum += want.Value
			}
			if got := checksum(records); got != sum {
				t.Errorf("checksum is %#x, want %#x", got, sum)
			}
		})
	}
}

// TestPrivilegesFrom needs no privileges: it judges capability sets.
func TestPrivilegesFrom(t *testing.T) {
	for _, tc := range []struct {
		name      string
		effective uint64
		ok        bool
	}{
		{"none", 0, false},
		{"CAP_PERFMON alone", 1 << 38, false},
		{"CAP_BPF", 1 << unix.CAP_BPF, true},
		{"CAP_SYS_ADMIN", 1 << unix.CAP_SYS_ADMIN, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := privilegesFrom(tc.effective)
			if tc.ok {
				if err != nil {
					t.Fatalf("privilegesFrom(%#x) = %v, want nil", tc.effective, err)
				}
				return
			}
			if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "needs root (or CAP_BPF)") {
				t.Fatalf("privilegesFrom(%#x) = %v, want os.ErrPermission saying it needs root or CAP_BPF", tc.effective, err)
			}
		})
	}
}
