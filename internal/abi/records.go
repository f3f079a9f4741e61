package abi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
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
	// SourceConfig is one source's run-time settings: struct source_config.
	SourceConfig = ringwatchSourceConfig
	// SyscallFilter says which processes the syscalls source reports:
	// struct syscall_filter.
	SyscallFilter = ringwatchSyscallFilter
	// BenchRecord starts every record of the synthetic bench producer:
	// struct bench_record.
	BenchRecord = ringwatchBenchRecord
	// BenchArgs is the bench program's context: struct bench_args.
	BenchArgs = ringwatchBenchArgs
	// BenchCounters are the bench producer's counts: struct bench_counters.
	BenchCounters = ringwatchBenchCounters
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

// An exec record is as long as its filename needs, not the whole
// ExecRecord (bpf/ringwatch.h, struct exec_record): the fields up to and
// including Comm, the filename's bytes and NUL, zeros up to a multiple of
// ExecRecordAlign.
const (
	// ExecFilenameOffset is where the filename starts in an exec record.
	ExecFilenameOffset = int(unsafe.Offsetof(ExecRecord{}.Filename))
	// ExecMinSize is the shortest exec record a decoder accepts: every
	// field before the filename, and the filename's NUL.
	ExecMinSize = ExecFilenameOffset + 1
	// ExecMaxSize is the longest exec record, the whole layout: a
	// filename of FILENAME_LEN bytes, truncated.
	ExecMaxSize = int(unsafe.Sizeof(ExecRecord{}))
	// ExecRecordAlign is what an exec record's length is a multiple of:
	// enum exec_layout.
	ExecRecordAlign = int(ringwatchExecLayoutEXEC_RECORD_ALIGN)
)

// ExecRecordSize is the length of the exec record the producers write for
// filename, the path given to execve: a longer one is cut to fit, as the
// producer truncates it.
func ExecRecordSize(filename string) int {
	n := min(len(filename)+1, ExecMaxSize-ExecFilenameOffset)
	return (ExecFilenameOffset + n + ExecRecordAlign - 1) &^ (ExecRecordAlign - 1)
}

// Source names, as --source takes them: each writes records of one type.
const (
	SourceExec     = "exec"
	SourceSyscalls = "syscalls"
)

var sourceNames = [RecordTypeLimit]string{
	RecordExec:    SourceExec,
	RecordSyscall: SourceSyscalls,
}

// SourceOf names the source that writes records of type t, or "" if none.
func SourceOf(t RecordType) string {
	if t < RecordTypeLimit {
		return sourceNames[t]
	}
	return ""
}

// RecordTypeOf is the record type the named source writes, or 0 if no
// source has that name.
func RecordTypeOf(source string) RecordType {
	for t := RecordType(1); t < RecordTypeLimit; t++ {
		if sourceNames[t] == source {
			return t
		}
	}
	return 0
}

// ErrShortRecord is wrapped by decoding errors for records shorter than
// their type's layout.
var ErrShortRecord = errors.New("record shorter than its layout")

// Decode copies the start of rec into a T. A copy rather than a cast: ring
// memory is only valid during the consumer's callback, and test input need
// not be aligned.
func Decode[T any](rec []byte) (T, error) {
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
	HeaderSize     = int(unsafe.Sizeof(Header{}))
	headerKtimeOff = unsafe.Offsetof(Header{}.KtimeNs)
	headerSeqOff   = unsafe.Offsetof(Header{}.Seq)
	headerTypeOff  = unsafe.Offsetof(Header{}.Type)
	headerCPUOff   = unsafe.Offsetof(Header{}.Cpu)
)

// ParseHeader decodes the header every record starts with. It runs on
// every record the run command carries, so it reads the four fields
// directly rather than through Decode's generic copy, which costs several
// times as much.
func ParseHeader(rec []byte) (Header, error) {
	if len(rec) < HeaderSize {
		return Header{}, shortRecord(len(rec), Header{})
	}
	rec = rec[:HeaderSize]
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

// DecodeExec decodes a record of type RecordExec, of any length from
// ExecMinSize on: the filename is what the record holds of it, and the
// rest of the ExecRecord's Filename is zero. Bytes past ExecMaxSize (a
// perf buffer's padding) are not read.
func DecodeExec(rec []byte) (ExecRecord, error) {
	var v ExecRecord
	if len(rec) < ExecMinSize {
		return v, fmt.Errorf("%d-byte record, %T needs at least %d: %w", len(rec), v, ExecMinSize, ErrShortRecord)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), ExecMaxSize), rec)
	return v, nil
}

// DecodeSyscall decodes a record of type RecordSyscall.
func DecodeSyscall(rec []byte) (SyscallRecord, error) { return Decode[SyscallRecord](rec) }

// CString is the bytes of a fixed-size C string field, up to its NUL.
func CString(field []int8) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(field))), len(field))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// CommString is the process name, as the kernel's comm.
func (r *ExecRecord) CommString() string { return string(CString(r.Comm[:])) }

// FilenameString is the path given to execve, possibly truncated (see
// ExecFilenameTruncated).
func (r *ExecRecord) FilenameString() string { return string(CString(r.Filename[:])) }

// BenchTimeOffset is where a bench record's kernel timestamp sits.
const BenchTimeOffset = unsafe.Offsetof(BenchRecord{}.KtimeNs)
