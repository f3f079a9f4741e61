package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// The record layouts of bpf/ringwatch.h, as bpf2go generated them. The
// generated structs carry structs.HostLayout and explicit padding, so their
// memory is byte for byte what the BPF programs write.
type (
	// RecordType is a record's kind: enum record_type.
	RecordType = ringwatchRecordType
	// Header starts every record: struct record_header.
	Header = ringwatchRecordHeader
	// ExecRecord is written by the exec source: struct exec_record.
	ExecRecord = ringwatchExecRecord
	// SyscallRecord is written by the syscalls source: struct syscall_record.
	SyscallRecord = ringwatchSyscallRecord
	// SourceCounters are one CPU's counts for a source: struct source_counters.
	SourceCounters = ringwatchSourceCounters
)

const (
	RecordExec    = ringwatchRecordTypeRECORD_EXEC
	RecordSyscall = ringwatchRecordTypeRECORD_SYSCALL
	// RecordTypeLimit is one above the largest record type.
	RecordTypeLimit = ringwatchRecordTypeRECORD_TYPE_MAX

	// ExecFilenameTruncated is set in ExecRecord.Flags when the path did
	// not fit the record.
	ExecFilenameTruncated = uint32(ringwatchExecFlagsEXEC_FILENAME_TRUNCATED)
)

// ErrShortRecord is wrapped by decoding errors for records shorter than
// their type's layout.
var ErrShortRecord = errors.New("record shorter than its layout")

// decode copies the start of rec into a T. A copy rather than a cast: ring
// memory is only valid during the consumer's callback, and test input need
// not be aligned.
func decode[T any](rec []byte) (T, error) {
	var v T
	size := int(unsafe.Sizeof(v))
	if len(rec) < size {
		return v, shortRecord(len(rec), v)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), size), rec)
	return v, nil
}

// Header field offsets, from the generated type.
const (
	headerSize     = int(unsafe.Sizeof(Header{}))
	headerKtimeOff = unsafe.Offsetof(Header{}.KtimeNs)
	headerSeqOff   = unsafe.Offsetof(Header{}.Seq)
	headerTypeOff  = unsafe.Offsetof(Header{}.Type)
	headerCPUOff   = unsafe.Offsetof(Header{}.Cpu)
)

// ParseHeader decodes the header every record starts with. It runs on
// every record the run command carries, so it reads the four fields
// directly rather than through decode's generic copy, which costs several
// times as much.
func ParseHeader(rec []byte) (Header, error) {
	if len(rec) < headerSize {
		return Header{}, shortRecord(len(rec), Header{})
	}
	rec = rec[:headerSize]
	return Header{
		KtimeNs: binary.NativeEndian.Uint64(rec[headerKtimeOff:]),
		Seq:     binary.NativeEndian.Uint64(rec[headerSeqOff:]),
		Type:    RecordType(binary.NativeEndian.Uint32(rec[headerTypeOff:])),
		Cpu:     binary.NativeEndian.Uint32(rec[headerCPUOff:]),
	}, nil
}

// shortRecord is the error for a record shorter than v's layout.
func shortRecord(n int, v any) error {
	return fmt.Errorf("%d-byte record, %T needs %d: %w", n, v, reflect.TypeOf(v).Size(), ErrShortRecord)
}

// DecodeExec decodes a record of type RecordExec.
func DecodeExec(rec []byte) (ExecRecord, error) { return decode[ExecRecord](rec) }

// DecodeSyscall decodes a record of type RecordSyscall.
func DecodeSyscall(rec []byte) (SyscallRecord, error) { return decode[SyscallRecord](rec) }

// cString is the bytes of a fixed-size C string field, up to its NUL.
func cString(field []int8) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(field))), len(field))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// CommString is the process name, as the kernel's comm.
func (r *ExecRecord) CommString() string { return string(cString(r.Comm[:])) }

// FilenameString is the path given to execve, possibly truncated (see
// ExecFilenameTruncated).
func (r *ExecRecord) FilenameString() string { return string(cString(r.Filename[:])) }

// AppendJSON appends rec, a whole record, to dst as one JSON object without
// a trailing newline; "type" is the name of the source that wrote it. It
// allocates nothing beyond growing dst.
//
//	{"type":"exec","cpu":1,"seq":7,"ktime_ns":5123456789,"pid":4242,"ppid":4200,"uid":0,"comm":"true","filename":"/bin/true","filename_truncated":false}
//	{"type":"syscalls","cpu":0,"seq":99,"ktime_ns":5123456790,"pid":4242,"tid":4243,"nr":39}
func AppendJSON(dst, rec []byte) ([]byte, error) {
	h, err := ParseHeader(rec)
	if err != nil {
		return dst, err
	}
	switch h.Type {
	case RecordExec:
		r, err := DecodeExec(rec)
		if err != nil {
			return dst, err
		}
		dst = appendHeaderJSON(dst, SourceExec, h)
		dst = appendUint(dst, "pid", uint64(r.Pid))
		dst = appendUint(dst, "ppid", uint64(r.Ppid))
		dst = appendUint(dst, "uid", uint64(r.Uid))
		dst = append(dst, `,"comm":`...)
		dst = appendJSONString(dst, cString(r.Comm[:]))
		dst = append(dst, `,"filename":`...)
		dst = appendJSONString(dst, cString(r.Filename[:]))
		dst = append(dst, `,"filename_truncated":`...)
		dst = strconv.AppendBool(dst, r.Flags&ExecFilenameTruncated != 0)
	case RecordSyscall:
		r, err := DecodeSyscall(rec)
		if err != nil {
			return dst, err
		}
		dst = appendHeaderJSON(dst, SourceSyscalls, h)
		dst = appendUint(dst, "pid", uint64(r.Pid))
		dst = appendUint(dst, "tid", uint64(r.Tid))
		dst = append(dst, `,"nr":`...)
		dst = strconv.AppendInt(dst, r.Nr, 10)
	default:
		return dst, fmt.Errorf("unknown record type %d", h.Type)
	}
	return append(dst, '}'), nil
}

func appendHeaderJSON(dst []byte, source string, h Header) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, source...)
	dst = append(dst, '"')
	dst = appendUint(dst, "cpu", uint64(h.Cpu))
	dst = appendUint(dst, "seq", h.Seq)
	return appendUint(dst, "ktime_ns", h.KtimeNs)
}

func appendUint(dst []byte, key string, v uint64) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return strconv.AppendUint(dst, v, 10)
}

// appendJSONString appends s as a JSON string. Kernel strings are bytes,
// not necessarily UTF-8: invalid sequences become U+FFFD, as encoding/json
// does.
func appendJSONString(dst, s []byte) []byte {
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
