package output

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// Where AppendJSON reads the fields of a record: the offsets of the types
// bpf2go generated from bpf/ringwatch.h. Fields are read in place, not
// through abi.Decode's copy: AppendJSON runs once per record carried.
const (
	headerSize = unsafe.Sizeof(abi.Header{})

	syscallSize   = int(unsafe.Sizeof(abi.SyscallRecord{}))
	syscallPidOff = unsafe.Offsetof(abi.SyscallRecord{}.Pid)
	syscallTidOff = unsafe.Offsetof(abi.SyscallRecord{}.Tid)
	syscallNrOff  = unsafe.Offsetof(abi.SyscallRecord{}.Nr)

	execPidOff      = unsafe.Offsetof(abi.ExecRecord{}.Pid)
	execPpidOff     = unsafe.Offsetof(abi.ExecRecord{}.Ppid)
	execUIDOff      = unsafe.Offsetof(abi.ExecRecord{}.Uid)
	execFlagsOff    = unsafe.Offsetof(abi.ExecRecord{}.Flags)
	execCommOff     = unsafe.Offsetof(abi.ExecRecord{}.Comm)
	execCommEnd     = execCommOff + unsafe.Sizeof(abi.ExecRecord{}.Comm)
	execFilenameOff = unsafe.Offsetof(abi.ExecRecord{}.Filename)
	execFilenameEnd = execFilenameOff + unsafe.Sizeof(abi.ExecRecord{}.Filename)
)

// The longest a record's fixed fields can print, with every number at its
// widest: AppendJSON makes room for them once and then writes without
// checking capacity.
const (
	maxHeaderJSON  = len(`{"type":"syscalls","cpu":,"seq":,"ktime_ns":`) + 10 + 20 + 20
	maxSyscallJSON = maxHeaderJSON + len(`,"pid":,"tid":,"nr":}`) + 10 + 10 + 20
	maxExecIDsJSON = maxHeaderJSON + len(`,"pid":,"ppid":,"uid":`) + 3*10
)

// AppendJSON appends rec, a whole record, to dst as one JSON object without
// a trailing newline; "type" is the name of the source that wrote it. It
// allocates nothing beyond growing dst.
//
//	{"type":"exec","cpu":1,"seq":7,"ktime_ns":5123456789,"pid":4242,"ppid":4200,"uid":0,"comm":"true","filename":"/bin/true","filename_truncated":false}
//	{"type":"syscalls","cpu":0,"seq":99,"ktime_ns":5123456790,"pid":4242,"tid":4243,"nr":39}
func AppendJSON(dst, rec []byte) ([]byte, error) {
	h, err := abi.ParseHeader(rec)
	if err != nil {
		return dst, err
	}
	switch h.Type {
	case abi.RecordExec:
		if len(rec) < abi.ExecMinSize { // records are as long as their filename
			_, err := abi.DecodeExec(rec) // the same error as every decoder's
			return dst, err
		}
		b, n := grow(dst, maxExecIDsJSON)
		n = putHeader(b, n, `{"type":"exec","cpu":`, h)
		n = putKeyUint(b, n, `,"pid":`, uint64(binary.NativeEndian.Uint32(rec[execPidOff:])))
		n = putKeyUint(b, n, `,"ppid":`, uint64(binary.NativeEndian.Uint32(rec[execPpidOff:])))
		n = putKeyUint(b, n, `,"uid":`, uint64(binary.NativeEndian.Uint32(rec[execUIDOff:])))
		dst = append(b[:n], `,"comm":`...)
		dst = appendJSONString(dst, cString(rec[execCommOff:execCommEnd]))
		dst = append(dst, `,"filename":`...)
		dst = appendJSONString(dst, cString(rec[execFilenameOff:min(len(rec), int(execFilenameEnd))]))
		if binary.NativeEndian.Uint32(rec[execFlagsOff:])&abi.ExecFilenameTruncated != 0 {
			return append(dst, `,"filename_truncated":true}`...), nil
		}
		return append(dst, `,"filename_truncated":false}`...), nil
	case abi.RecordSyscall:
		if len(rec) < syscallSize {
			_, err := abi.DecodeSyscall(rec)
			return dst, err
		}
		b, n := grow(dst, maxSyscallJSON)
		n = putHeader(b, n, `{"type":"syscalls","cpu":`, h)
		n = putKeyUint(b, n, `,"pid":`, uint64(binary.NativeEndian.Uint32(rec[syscallPidOff:])))
		n = putKeyUint(b, n, `,"tid":`, uint64(binary.NativeEndian.Uint32(rec[syscallTidOff:])))
		n += copy(b[n:], `,"nr":`)
		nr := int64(binary.NativeEndian.Uint64(rec[syscallNrOff:]))
		if nr < 0 {
			b[n] = '-'
			n = putUint(b, n+1, uint64(-nr))
		} else {
			n = putUint(b, n, uint64(nr))
		}
		b[n] = '}'
		return b[:n+1], nil
	default:
		return dst, fmt.Errorf("unknown record type %d", h.Type)
	}
}

// grow makes room for max more bytes in dst, and returns dst at its full
// capacity with the length it had, for the put functions to write at.
func grow(dst []byte, max int) ([]byte, int) {
	n := len(dst)
	if cap(dst)-n < max {
		dst = append(dst[:cap(dst)], make([]byte, max)...)
	}
	return dst[:cap(dst)], n
}

// putHeader writes the header's fields after start, which opens the object
// and names the type and the first key.
func putHeader(b []byte, n int, start string, h abi.Header) int {
	n += copy(b[n:], start)
	n = putUint(b, n, uint64(h.Cpu))
	n = putKeyUint(b, n, `,"seq":`, h.Seq)
	return putKeyUint(b, n, `,"ktime_ns":`, h.KtimeNs)
}

// putKeyUint writes key, then v, at b[n:], and returns the new end.
func putKeyUint(b []byte, n int, key string, v uint64) int {
	return putUint(b, n+copy(b[n:], key), v)
}

const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

var powersOf10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// putUint writes v in decimal at b[n:], which has room for it, and returns
// the new end. It writes the digits in place, two at a time from the
// right, where strconv.AppendUint formats into a buffer and copies.
func putUint(b []byte, n int, v uint64) int {
	// 1233/4096 is just above log10(2): digits is the number of decimal
	// digits of v, or one less, which the comparison corrects.
	digits := bits.Len64(v|1) * 1233 >> 12
	if v|1 >= powersOf10[digits] {
		digits++
	}
	end := n + digits
	i := end
	for v >= 100 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		b[i], b[i+1] = digitPairs[r], digitPairs[r+1]
		v = q
	}
	if v >= 10 {
		b[i-2], b[i-1] = digitPairs[v*2], digitPairs[v*2+1]
	} else {
		b[i-1] = byte('0' + v)
	}
	return end
}

// cString is a C string field up to its NUL, or whole if it has none.
func cString(field []byte) []byte {
	if i := bytes.IndexByte(field, 0); i >= 0 {
		return field[:i]
	}
	return field
}

// safeASCII says which bytes a JSON string may hold as they are.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string. Kernel strings are bytes,
// not necessarily UTF-8: invalid sequences become U+FFFD, as encoding/json
// does. Runs of bytes that need no escape are copied at once.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // of the run not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf && safeASCII[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			i++
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
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
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
