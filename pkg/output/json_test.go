package output

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// bytesOf is the memory of v, as the BPF program would write it.
func bytesOf[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

func setCString(dst []int8, s string) {
	for i := range dst {
		dst[i] = 0
	}
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = int8(s[i])
	}
}

func TestAppendJSONRejectsShortRecords(t *testing.T) {
	full := bytesOf(&abi.ExecRecord{Hdr: abi.Header{Type: abi.RecordExec}})
	if _, err := AppendJSON(nil, full[:40]); !errors.Is(err, abi.ErrShortRecord) {
		t.Errorf("AppendJSON of a cut exec record: %v, want abi.ErrShortRecord", err)
	}
}

func TestAppendJSON(t *testing.T) {
	exec := abi.ExecRecord{Hdr: abi.Header{KtimeNs: 5123456789, Seq: 7, Type: abi.RecordExec, Cpu: 1}, Pid: 4242, Ppid: 4200, Uid: 1000}
	setCString(exec.Comm[:], "true")
	setCString(exec.Filename[:], "/bin/true")

	odd := exec
	setCString(odd.Comm[:], "a\"b\\c\td\x01")
	setCString(odd.Filename[:], "/tmp/caf\xc3\xa9/\xff")
	odd.Flags = abi.ExecFilenameTruncated

	// A name filling the whole field has no NUL: it must still end there.
	full := exec
	for i := range full.Comm {
		full.Comm[i] = 'x'
	}

	sys := abi.SyscallRecord{Hdr: abi.Header{KtimeNs: 99, Seq: 3, Type: abi.RecordSyscall, Cpu: 0}, Pid: 10, Tid: 11, Nr: 39}

	for _, tc := range []struct {
		name string
		rec  []byte
		want map[string]any
	}{
		{"exec", bytesOf(&exec), map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 4242.0, "ppid": 4200.0, "uid": 1000.0,
			"comm": "true", "filename": "/bin/true", "filename_truncated": false}},
		{"exec with escapes and bad UTF-8", bytesOf(&odd), map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 4242.0, "ppid": 4200.0, "uid": 1000.0,
			"comm": "a\"b\\c\td\x01", "filename": "/tmp/café/\ufffd", "filename_truncated": true}},
		{"exec with a full comm", bytesOf(&full), map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 4242.0, "ppid": 4200.0, "uid": 1000.0,
			"comm": "xxxxxxxxxxxxxxxx", "filename": "/bin/true", "filename_truncated": false}},
		{"syscall", bytesOf(&sys), map[string]any{
			"type": "syscalls", "cpu": 0.0, "seq": 3.0, "ktime_ns": 99.0, "pid": 10.0, "tid": 11.0, "nr": 39.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, err := AppendJSON([]byte("prefix "), tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(line[len("prefix "):], &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, line)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestAppendJSONRejectsUnknownType(t *testing.T) {
	rec := bytesOf(&abi.SyscallRecord{Hdr: abi.Header{Type: 77}})
	if _, err := AppendJSON(nil, rec); err == nil {
		t.Fatal("record of type 77 encoded")
	}
}

func TestAppendJSONDoesNotAllocate(t *testing.T) {
	rec := abi.ExecRecord{Hdr: abi.Header{Type: abi.RecordExec}}
	setCString(rec.Filename[:], "/usr/bin/something")
	b := bytesOf(&rec)
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := AppendJSON(buf[:0], b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendJSON allocates %.1f times per record", n)
	}
}
