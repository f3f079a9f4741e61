package abi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
)

// TestLayoutsMatchBTF checks the generated Go types against the BTF of the
// compiled BPF object: same size, so decoding by copy reads every field
// where the BPF program wrote it.
func TestLayoutsMatchBTF(t *testing.T) {
	spec, err := LoadProducers()
	if err != nil {
		t.Fatal(err)
	}
	for name, goSize := range map[string]uintptr{
		"record_header":     unsafe.Sizeof(Header{}),
		"exec_record":       unsafe.Sizeof(ExecRecord{}),
		"syscall_record":    unsafe.Sizeof(SyscallRecord{}),
		"source_counters":   unsafe.Sizeof(SourceCounters{}),
		"syscall_filter":    unsafe.Sizeof(ringwatchSyscallFilter{}),
		"source_config":     unsafe.Sizeof(ringwatchSourceConfig{}),
		"transport_config":  unsafe.Sizeof(ringwatchTransportConfig{}),
		"spsc_queue":        unsafe.Sizeof(ringwatchSpscQueue{}),
		"wake_state":        unsafe.Sizeof(ringwatchWakeState{}),
		"recorder_counters": unsafe.Sizeof(ringwatchRecorderCounters{}),
	} {
		var st *btf.Struct
		if err := spec.Types.TypeByName(name, &st); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if uintptr(st.Size) != goSize {
			t.Errorf("%s is %d bytes in BTF and %d in Go", name, st.Size, goSize)
		}
	}
}

// TestSPSCLayoutIsWhatTheConsumerReads pins the offsets pkg/consumer's
// spsc.go reads the shared queues at (its spsc* constants): a change to
// bpf/ringwatch.h that moves them must change the consumer too.
func TestSPSCLayoutIsWhatTheConsumerReads(t *testing.T) {
	var q ringwatchSpscQueue
	var w ringwatchWakeState
	for _, c := range []struct {
		what      string
		got, want uintptr
	}{
		{"spsc_queue size", unsafe.Sizeof(q), 128},
		{"spsc_queue.head", unsafe.Offsetof(q.Head), 0},
		{"spsc_queue.tail", unsafe.Offsetof(q.Tail), 64},
		{"spsc_slot.data", unsafe.Offsetof(ringwatchSpscSlot{}.Data), 8},
		{"wake_state size", unsafe.Sizeof(w), 64},
		{"wake_state.consumer_sleeping", unsafe.Offsetof(w.ConsumerSleeping), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d, pkg/consumer reads %d", c.what, c.got, c.want)
		}
	}
}

// bytesOf is the memory of v, as the BPF program would write it.
func bytesOf[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

func TestDecodeRejectsShortRecords(t *testing.T) {
	full := bytesOf(&ExecRecord{Hdr: Header{Type: RecordExec}})
	for _, n := range []int{0, 8, int(unsafe.Sizeof(Header{})) - 1} {
		if _, err := ParseHeader(full[:n]); !errors.Is(err, ErrShortRecord) {
			t.Errorf("ParseHeader of %d bytes: %v, want ErrShortRecord", n, err)
		}
	}
	if _, err := DecodeExec(full[:ExecMinSize-1]); !errors.Is(err, ErrShortRecord) {
		t.Errorf("DecodeExec one byte short of a NUL filename: %v, want ErrShortRecord", err)
	}
	for _, n := range []int{ExecMinSize, ExecRecordSize(""), ExecMaxSize - 1, ExecMaxSize, ExecMaxSize + 4} {
		if _, err := DecodeExec(append(bytes.Clone(full), 0, 0, 0, 0)[:n]); err != nil {
			t.Errorf("DecodeExec of %d bytes: %v", n, err)
		}
	}
}

// TestExecRecordSize pins the exec record's length rule of bpf/ringwatch.h
// (struct exec_record): fields to comm, the filename and its NUL, rounded
// up to 8; the kernel tests check the producers write exactly this.
func TestExecRecordSize(t *testing.T) {
	for _, c := range []struct {
		filename string
		want     int
	}{
		{"", 64},                         // 56 + 1
		{"/bin/sh", 64},                  // 56 + 8
		{"/bin/true", 72},                // 56 + 10
		{"/usr/bin/true", 72},            // 56 + 14
		{strings.Repeat("x", 254), 312},  // 56 + 255
		{strings.Repeat("x", 255), 312},  // 56 + 256: fills the field
		{strings.Repeat("x", 4096), 312}, // truncated
		{strings.Repeat("x", 100), 160},  // 56 + 101 = 157
		{strings.Repeat("x", 103), 160},  // 56 + 104
		{strings.Repeat("x", 104), 168},  // 56 + 105
	} {
		if got := ExecRecordSize(c.filename); got != c.want {
			t.Errorf("ExecRecordSize of a %d-byte filename = %d, want %d", len(c.filename), got, c.want)
		}
	}
	if ExecFilenameOffset != 56 || ExecMinSize != 57 || ExecMaxSize != 312 || ExecRecordAlign != 8 {
		t.Errorf("exec layout: filename at %d, records %d to %d bytes, aligned to %d; want 56, 57 to 312, 8",
			ExecFilenameOffset, ExecMinSize, ExecMaxSize, ExecRecordAlign)
	}
}
