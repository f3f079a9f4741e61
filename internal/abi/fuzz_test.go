package abi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// layoutBytes is v's memory.
func layoutBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// decodeTwice decodes in with decode twice, each time from a copy of in
// followed by 64 bytes of other values beyond its length, and fails t
// unless both agree: a decoder that read past len(in) would tell them
// apart. It reports whether in was long enough for a T, failing t unless
// a short one gave ErrShortRecord.
func decodeTwice[T any](t *testing.T, in []byte, decode func([]byte) (T, error)) (T, bool) {
	t.Helper()
	var v T
	return decodeTwiceFrom(t, in, int(unsafe.Sizeof(v)), decode)
}

// decodeTwiceFrom is decodeTwice for a decoder that takes records of
// minSize bytes on.
func decodeTwiceFrom[T any](t *testing.T, in []byte, minSize int, decode func([]byte) (T, error)) (T, bool) {
	t.Helper()
	var got [2]T
	for i, fill := range []byte{0x00, 0xff} {
		buf := append(bytes.Clone(in), bytes.Repeat([]byte{fill}, 64)...)
		v, err := decode(buf[:len(in)])
		if len(in) < minSize {
			if !errors.Is(err, ErrShortRecord) {
				t.Fatalf("decoding %d bytes as a %T of at least %d: %v, want ErrShortRecord", len(in), v, minSize, err)
			}
			return v, false
		}
		if err != nil {
			t.Fatalf("decoding %d bytes as %T: %v", len(in), v, err)
		}
		got[i] = v
	}
	if !bytes.Equal(layoutBytes(&got[0]), layoutBytes(&got[1])) {
		t.Fatalf("decoding %T depends on bytes past the input", got[0])
	}
	return got[0], true
}

// checkCString fails t unless s is field up to its first NUL, or all of
// field when it has none.
func checkCString(t *testing.T, name string, field []int8, s string) {
	t.Helper()
	b := unsafe.Slice((*byte)(unsafe.Pointer(&field[0])), len(field))
	want := b
	if i := bytes.IndexByte(b, 0); i >= 0 {
		want = b[:i]
	}
	if s != string(want) {
		t.Fatalf("%s of field %x is %q, want %q", name, b, s, want)
	}
}

// FuzzDecodeRecords gives the record decoders arbitrary bytes, as a
// record handed over by a ring. They must not panic, must fail exactly for
// a record shorter than its layout (an exec record: shorter than
// ExecMinSize, as its length follows its filename), must not read past the
// record, and must decode each field from the bytes at its offset in
// bpf/ringwatch.h's layout: the decoded struct's memory is the record's
// first bytes, and an exec record's is zero past a record shorter than the
// layout. The hand-written ParseHeader must agree with the generic Decode.
func FuzzDecodeRecords(f *testing.F) {
	header := func(seq uint64, typ RecordType) []byte {
		h := Header{KtimeNs: 123456789, Seq: seq, Type: typ, Cpu: 3}
		return bytes.Clone(layoutBytes(&h))
	}
	exec := ExecRecord{Hdr: Header{Seq: 1, Type: RecordExec}, Pid: 42, Ppid: 1, Uid: 1000}
	copy(exec.Comm[:], []int8{'s', 'h'})
	for i := range exec.Filename {
		exec.Filename[i] = 'a' // no NUL: a truncated path
	}
	exec.Flags = ExecFilenameTruncated
	sys := SyscallRecord{Hdr: Header{Seq: 1 << 63, Type: RecordSyscall}, Pid: 7, Tid: 8, Nr: -1}
	f.Add(header(5, RecordExec))
	f.Add(bytes.Clone(layoutBytes(&exec)))
	// Exec records as the producers write them: as long as the filename.
	short := exec
	short.Flags = 0
	for i := range short.Filename {
		short.Filename[i] = 0
	}
	copy(short.Filename[:], []int8{'/', 'b', 'i', 'n', '/', 't', 'r', 'u', 'e'})
	f.Add(bytes.Clone(layoutBytes(&short)[:ExecRecordSize("/bin/true")]))
	f.Add(bytes.Clone(layoutBytes(&short)[:ExecMinSize]))
	f.Add(bytes.Clone(layoutBytes(&short)[:ExecMinSize-1]))
	f.Add(append(bytes.Clone(layoutBytes(&short)[:ExecRecordSize("/bin/true")]), 0xff, 0xff, 0xff, 0xff)) // perf padding
	f.Add(bytes.Clone(layoutBytes(&sys)))
	f.Add(append(bytes.Clone(layoutBytes(&sys)), 1, 2, 3)) // ring padding after it
	f.Add(header(0, RecordTypeLimit)[:HeaderSize-1])
	f.Add([]byte(nil))
	f.Fuzz(func(t *testing.T, rec []byte) {
		h, ok := decodeTwice(t, rec, ParseHeader)
		g, gok := decodeTwice(t, rec, Decode[Header])
		if ok != gok || h != g {
			t.Fatalf("ParseHeader(%x) = %+v, %v; Decode[Header] = %+v, %v", rec, h, ok, g, gok)
		}
		if ok && (h.KtimeNs != binary.NativeEndian.Uint64(rec[headerKtimeOff:]) ||
			h.Seq != binary.NativeEndian.Uint64(rec[headerSeqOff:]) ||
			h.Type != RecordType(binary.NativeEndian.Uint32(rec[headerTypeOff:])) ||
			h.Cpu != binary.NativeEndian.Uint32(rec[headerCPUOff:])) {
			t.Fatalf("ParseHeader(%x) = %+v, not the fields at their offsets", rec, h)
		}
		if ok {
			// Every type has a name, or none, and SourceOf never indexes
			// out of range whatever a record claims.
			if src := SourceOf(h.Type); (src != "") != (h.Type >= RecordExec && h.Type < RecordTypeLimit) {
				t.Fatalf("SourceOf(%d) = %q", h.Type, src)
			}
		}

		if e, ok := decodeTwiceFrom(t, rec, ExecMinSize, DecodeExec); ok {
			got := layoutBytes(&e)
			n := min(len(rec), len(got))
			if !bytes.Equal(got[:n], rec[:n]) || !bytes.Equal(got[n:], make([]byte, len(got)-n)) {
				t.Fatalf("DecodeExec(%x) = %x", rec[:n], got)
			}
			checkCString(t, "CommString", e.Comm[:], e.CommString())
			checkCString(t, "FilenameString", e.Filename[:], e.FilenameString())
		}
		if s, ok := decodeTwice(t, rec, DecodeSyscall); ok {
			if got := layoutBytes(&s); !bytes.Equal(got, rec[:len(got)]) {
				t.Fatalf("DecodeSyscall(%x) = %x", rec[:len(got)], got)
			}
		}
	})
}
