package output

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/ringwatch/ringwatch/internal/abi"
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
		r, err := abi.DecodeExec(rec)
		if err != nil {
			return dst, err
		}
		dst = appendHeaderJSON(dst, abi.SourceExec, h)
		dst = appendUint(dst, "pid", uint64(r.Pid))
		dst = appendUint(dst, "ppid", uint64(r.Ppid))
		dst = appendUint(dst, "uid", uint64(r.Uid))
		dst = append(dst, `,"comm":`...)
		dst = appendJSONString(dst, abi.CString(r.Comm[:]))
		dst = append(dst, `,"filename":`...)
		dst = appendJSONString(dst, abi.CString(r.Filename[:]))
		dst = append(dst, `,"filename_truncated":`...)
		dst = strconv.AppendBool(dst, r.Flags&abi.ExecFilenameTruncated != 0)
	case abi.RecordSyscall:
		r, err := abi.DecodeSyscall(rec)
		if err != nil {
			return dst, err
		}
		dst = appendHeaderJSON(dst, abi.SourceSyscalls, h)
		dst = appendUint(dst, "pid", uint64(r.Pid))
		dst = appendUint(dst, "tid", uint64(r.Tid))
		dst = append(dst, `,"nr":`...)
		dst = strconv.AppendInt(dst, r.Nr, 10)
	default:
		return dst, fmt.Errorf("unknown record type %d", h.Type)
	}
	return append(dst, '}'), nil
}

func appendHeaderJSON(dst []byte, source string, h abi.Header) []byte {
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

// Writer prints records as JSON lines, one buffered write per batch. Records
// that do not decode are left out: the accounting counts them as invalid.
// It is not safe for concurrent use.
type Writer struct {
	w    *bufio.Writer
	line []byte
}

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10)}
}

// Write prints one batch of records and flushes it.
func (e *Writer) Write(records [][]byte) error {
	for _, rec := range records {
		line, err := AppendJSON(e.line[:0], rec)
		if err != nil {
			continue
		}
		e.line = append(line, '\n')
		if _, err := e.w.Write(e.line); err != nil {
			return err
		}
	}
	return e.w.Flush()
}

// Flush writes what is buffered.
func (e *Writer) Flush() error { return e.w.Flush() }
