package control

import (
	"encoding/binary"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// Message sizes in bytes. A message must be exactly its size: the control
// program rejects a longer one as well as a shorter one.
const (
	PingSize     = int(unsafe.Sizeof(abi.MsgPingLayout{}))
	DataSize     = int(unsafe.Sizeof(abi.MsgDataLayout{}))
	SourceSize   = int(unsafe.Sizeof(abi.MsgSourceLayout{})) // set sampling, pause, resume
	setPIDsFixed = int(unsafe.Sizeof(abi.MsgSetPIDsLayout{}))
)

// SetPIDsSize is the size of a set-pids message listing n pids.
func SetPIDsSize(n int) int { return setPIDsFixed + 4*n }

// The Append functions encode a message after dst and return the extended
// slice; given a dst with room, such as a reserved sample's Data[:0], they
// do not allocate. They encode what they are given: the control program
// checks the values (see bpf/control.h) and rejects what is out of range.

func appendHeader(dst []byte, t abi.MessageType) []byte {
	dst = binary.NativeEndian.AppendUint32(dst, uint32(t))
	return binary.NativeEndian.AppendUint32(dst, 0) // reserved
}

// AppendPing encodes a ping: struct msg_ping.
func AppendPing(dst []byte, id, sentNs uint64) []byte {
	dst = appendHeader(dst, abi.MsgPing)
	dst = binary.NativeEndian.AppendUint64(dst, id)
	return binary.NativeEndian.AppendUint64(dst, sentNs)
}

// AppendData encodes a data message: struct msg_data.
func AppendData(dst []byte, seq, value uint64) []byte {
	dst = appendHeader(dst, abi.MsgData)
	dst = binary.NativeEndian.AppendUint64(dst, seq)
	return binary.NativeEndian.AppendUint64(dst, value)
}

// AppendSetPIDs encodes a set-pids message: struct msg_set_pids and the
// pids. An empty list clears the syscalls source's allow-list: the source
// then reports every process but excludePid (0 for none), which should be
// the process reading the records, so that it does not record its own
// reading.
func AppendSetPIDs(dst []byte, pids []uint32, excludePid uint32) []byte {
	dst = appendHeader(dst, abi.MsgSetPIDs)
	dst = binary.NativeEndian.AppendUint32(dst, uint32(len(pids)))
	dst = binary.NativeEndian.AppendUint32(dst, excludePid)
	for _, pid := range pids {
		dst = binary.NativeEndian.AppendUint32(dst, pid)
	}
	return dst
}

// AppendSource encodes a set-sampling, pause or resume message for the
// source that writes records of type source: struct msg_source.
// sampleEvery must be 0 for pause and resume.
func AppendSource(dst []byte, t abi.MessageType, source abi.RecordType, sampleEvery uint32) []byte {
	dst = appendHeader(dst, t)
	dst = binary.NativeEndian.AppendUint32(dst, uint32(source))
	return binary.NativeEndian.AppendUint32(dst, sampleEvery)
}

// ParseReply decodes a ping's reply from the replies ring.
func ParseReply(rec []byte) (abi.Reply, error) { return abi.Decode[abi.Reply](rec) }

// DataChecksum folds value into sum as the control program does for each
// data message: (sum ^ value) * the 64-bit FNV prime, starting from 0. The
// order of the values changes the result.
func DataChecksum(sum, value uint64) uint64 { return (sum ^ value) * 0x100000001b3 }
