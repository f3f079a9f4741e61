package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"
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

// execBytes is rec as the producers write it: as long as its filename
// needs (abi.ExecRecordSize), not the whole layout.
func execBytes(rec *abi.ExecRecord) []byte {
	return bytesOf(rec)[:abi.ExecRecordSize(rec.FilenameString())]
}

func TestAppendJSONRejectsShortRecords(t *testing.T) {
	full := bytesOf(&abi.ExecRecord{Hdr: abi.Header{Type: abi.RecordExec}})
	for _, n := range []int{40, abi.ExecFilenameOffset, abi.ExecMinSize - 1} {
		if _, err := AppendJSON(nil, full[:n]); !errors.Is(err, abi.ErrShortRecord) {
			t.Errorf("AppendJSON of an exec record cut to %d bytes: %v, want abi.ErrShortRecord", n, err)
		}
	}
	if _, err := AppendJSON(nil, full[:abi.ExecMinSize]); err != nil {
		t.Errorf("AppendJSON of the shortest exec record, %d bytes: %v", abi.ExecMinSize, err)
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

	// A filename that runs to the record's end has no NUL in it: it ends
	// there, whatever lies beyond (here the rest of the layout).
	cut := exec
	setCString(cut.Filename[:], "/bin/truexxxx")

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
		// Records as the producers write them, as long as their content:
		// the same objects as the whole layouts above.
		{"exec as written", execBytes(&exec), map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 4242.0, "ppid": 4200.0, "uid": 1000.0,
			"comm": "true", "filename": "/bin/true", "filename_truncated": false}},
		{"exec with escapes as written", execBytes(&odd), map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 4242.0, "ppid": 4200.0, "uid": 1000.0,
			"comm": "a\"b\\c\td\x01", "filename": "/tmp/café/\ufffd", "filename_truncated": true}},
		{"exec with a perf buffer's padding", append(execBytes(&exec), 0, 0, 0, 0), map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 4242.0, "ppid": 4200.0, "uid": 1000.0,
			"comm": "true", "filename": "/bin/true", "filename_truncated": false}},
		{"exec cut inside its filename", bytesOf(&cut)[:abi.ExecFilenameOffset+9], map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 4242.0, "ppid": 4200.0, "uid": 1000.0,
			"comm": "true", "filename": "/bin/true", "filename_truncated": false}},
		{"exec with an empty filename", bytesOf(&abi.ExecRecord{Hdr: exec.Hdr})[:abi.ExecMinSize], map[string]any{
			"type": "exec", "cpu": 1.0, "seq": 7.0, "ktime_ns": 5123456789.0, "pid": 0.0, "ppid": 0.0, "uid": 0.0,
			"comm": "", "filename": "", "filename_truncated": false}},
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

// appendJSONReference is AppendJSON as first written, through abi.Decode
// and strconv: the fast one must print the same bytes.
func appendJSONReference(dst, rec []byte) ([]byte, error) {
	h, err := abi.ParseHeader(rec)
	if err != nil {
		return dst, err
	}
	header := func(dst []byte, source string) []byte {
		dst = append(dst, `{"type":"`...)
		dst = append(dst, source...)
		dst = append(dst, `","cpu":`...)
		dst = strconv.AppendUint(dst, uint64(h.Cpu), 10)
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, h.Seq, 10)
		dst = append(dst, `,"ktime_ns":`...)
		return strconv.AppendUint(dst, h.KtimeNs, 10)
	}
	switch h.Type {
	case abi.RecordExec:
		r, err := abi.DecodeExec(rec)
		if err != nil {
			return dst, err
		}
		dst = header(dst, abi.SourceExec)
		dst = fmt.Appendf(dst, `,"pid":%d,"ppid":%d,"uid":%d,"comm":`, r.Pid, r.Ppid, r.Uid)
		dst = appendJSONStringReference(dst, abi.CString(r.Comm[:]))
		dst = append(dst, `,"filename":`...)
		dst = appendJSONStringReference(dst, abi.CString(r.Filename[:]))
		dst = fmt.Appendf(dst, `,"filename_truncated":%t`, r.Flags&abi.ExecFilenameTruncated != 0)
	case abi.RecordSyscall:
		r, err := abi.DecodeSyscall(rec)
		if err != nil {
			return dst, err
		}
		dst = header(dst, abi.SourceSyscalls)
		dst = fmt.Appendf(dst, `,"pid":%d,"tid":%d,"nr":%d`, r.Pid, r.Tid, r.Nr)
	default:
		return dst, fmt.Errorf("unknown record type %d", h.Type)
	}
	return append(dst, '}'), nil
}

// appendJSONStringReference is appendJSONString as first written, a byte
// at a time: it appends s as a JSON string. Kernel strings are bytes,
// not necessarily UTF-8: invalid sequences become U+FFFD, as encoding/json
// does.
func appendJSONStringReference(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			i++
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(dst, '"')
}

// checkAgainstReference fails if AppendJSON and appendJSONReference differ
// on rec.
func checkAgainstReference(t *testing.T, rec []byte) {
	t.Helper()
	want, wantErr := appendJSONReference([]byte("x"), rec)
	got, err := AppendJSON([]byte("x"), rec)
	if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("record % x:\ngot  %s (%v)\nwant %s (%v)", rec, got, err, want, wantErr)
	}
}

// interestingUint is a random number, often at a digit boundary.
func interestingUint(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		p := uint64(1)
		for range r.IntN(20) {
			p *= 10
		}
		return p - 1 + uint64(r.IntN(3))
	case 1:
		return uint64(r.IntN(1000))
	case 2:
		return math.MaxUint64 - uint64(r.IntN(3))
	}
	return r.Uint64() >> r.IntN(64)
}

// TestAppendJSONMatchesReference prints random records of both kinds, with
// numbers at every width and strings of any bytes.
func TestAppendJSONMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randomString := func(dst []int8) {
		n := r.IntN(len(dst) + 1)
		for i := range dst {
			dst[i] = 0
			if i < n {
				switch r.IntN(3) {
				case 0:
					dst[i] = int8(' ' + r.IntN(95))
				case 1:
					dst[i] = int8(r.IntN(256) - 128)
				default:
					const odd = "\"\\/\x01\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
					dst[i] = int8(odd[r.IntN(len(odd))])
				}
			}
		}
	}
	for range 50000 {
		hdr := abi.Header{KtimeNs: interestingUint(r), Seq: interestingUint(r), Cpu: uint32(interestingUint(r))}
		if r.IntN(4) == 0 {
			hdr.Type = abi.RecordExec
			rec := abi.ExecRecord{Hdr: hdr, Pid: uint32(interestingUint(r)), Ppid: uint32(interestingUint(r)),
				Uid: uint32(interestingUint(r)), Flags: uint32(r.IntN(2))}
			randomString(rec.Comm[:])
			randomString(rec.Filename[:])
			// As long as the content, or cut anywhere, or padded after.
			b := bytesOf(&rec)
			switch r.IntN(3) {
			case 0:
				b = execBytes(&rec)
			case 1:
				b = b[:abi.ExecMinSize-1+r.IntN(len(b)-abi.ExecMinSize+2)]
			default:
				b = append(bytes.Clone(b), 1, 2, 3, 4)
			}
			checkAgainstReference(t, b)
		} else {
			hdr.Type = abi.RecordSyscall
			rec := abi.SyscallRecord{Hdr: hdr, Pid: uint32(interestingUint(r)), Tid: uint32(interestingUint(r)),
				Nr: int64(interestingUint(r))}
			checkAgainstReference(t, bytesOf(&rec))
		}
	}
	for _, nr := range []int64{0, -1, 9, -10, math.MaxInt64, math.MinInt64} {
		checkAgainstReference(t, bytesOf(&abi.SyscallRecord{Hdr: abi.Header{Type: abi.RecordSyscall}, Nr: nr}))
	}
}

func FuzzAppendJSON(f *testing.F) {
	exec := abi.ExecRecord{Hdr: abi.Header{Type: abi.RecordExec, Seq: 7}, Pid: 1}
	setCString(exec.Filename[:], "/bin/true")
	f.Add(bytesOf(&exec))
	f.Add(execBytes(&exec))
	f.Add(bytesOf(&exec)[:abi.ExecMinSize])
	f.Add(bytesOf(&abi.SyscallRecord{Hdr: abi.Header{Type: abi.RecordSyscall, Seq: 99}, Nr: -1}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, rec []byte) { checkAgainstReference(t, rec) })
}
