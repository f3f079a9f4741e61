package loader

import (
	"encoding/binary"
	"strconv"
	"unsafe"
)

// The user ring's message layouts of bpf/control.h, as bpf2go generated
// them.
type (
	// MessageType is what a user ring message asks for: enum msg_type.
	MessageType = controlMsgType
	// RejectReason is why the control program rejected a message: enum
	// msg_reject.
	RejectReason = controlMsgReject
	// Reply answers a ping, on the replies ring: struct msg_reply.
	Reply = controlMsgReply
	// DrainStats are the control program's counters: struct drain_stats.
	// Accepted is indexed by MessageType, Rejected by RejectReason.
	DrainStats = controlDrainStats
)

const (
	MsgPing        = controlMsgTypeMSG_PING
	MsgSetPIDs     = controlMsgTypeMSG_SET_PIDS
	MsgSetSampling = controlMsgTypeMSG_SET_SAMPLING
	MsgPause       = controlMsgTypeMSG_PAUSE
	MsgResume      = controlMsgTypeMSG_RESUME
	MsgData        = controlMsgTypeMSG_DATA
	// MessageTypeLimit is one above the largest message type.
	MessageTypeLimit = controlMsgTypeMSG_TYPE_MAX

	RejectUnknownType = controlMsgRejectREJECT_UNKNOWN_TYPE
	RejectLength      = controlMsgRejectREJECT_LENGTH
	RejectValue       = controlMsgRejectREJECT_VALUE
	RejectApply       = controlMsgRejectREJECT_APPLY
	// RejectReasonLimit is one above the largest reject reason.
	RejectReasonLimit = controlMsgRejectREJECT_REASON_MAX
)

// Message sizes in bytes. A message must be exactly its size: the control
// program rejects a longer one as well as a shorter one.
const (
	PingSize     = int(unsafe.Sizeof(controlMsgPing{}))
	DataSize     = int(unsafe.Sizeof(controlMsgData{}))
	SourceSize   = int(unsafe.Sizeof(controlMsgSource{})) // set sampling, pause, resume
	setPIDsFixed = int(unsafe.Sizeof(controlMsgSetPids{}))
)

// SetPIDsSize is the size of a set-pids message listing n pids.
func SetPIDsSize(n int) int { return setPIDsFixed + 4*n }

var messageNames = [...]string{
	MsgPing:        "ping",
	MsgSetPIDs:     "set_pids",
	MsgSetSampling: "set_sampling",
	MsgPause:       "pause",
	MsgResume:      "resume",
	MsgData:        "data",
}

// String is the type's name in metrics labels: ping, set_pids, set_sampling,
// pause, resume or data.
func (t controlMsgType) String() string {
	if int(t) < len(messageNames) && messageNames[t] != "" {
		return messageNames[t]
	}
	return "type_" + strconv.Itoa(int(t))
}

var rejectNames = [...]string{
	RejectUnknownType: "unknown type",
	RejectLength:      "bad length",
	RejectValue:       "bad value",
	RejectApply:       "map update failed",
}

func (r controlMsgReject) String() string {
	if int(r) < len(rejectNames) {
		return rejectNames[r]
	}
	return "reason " + strconv.Itoa(int(r))
}

// AcceptedTotal is how many messages of every type were accepted.
func (s controlDrainStats) AcceptedTotal() uint64 {
	var n uint64
	for _, a := range s.Accepted {
		n += a
	}
	return n
}

// RejectedTotal is how many messages were rejected, for every reason.
func (s controlDrainStats) RejectedTotal() uint64 {
	var n uint64
	for _, r := range s.Rejected {
		n += r
	}
	return n
}

// The Append functions encode a message after dst and return the extended
// slice; given a dst with room, such as a reserved sample's Data[:0], they
// do not allocate. They encode what they are given: the control program
// checks the values (see bpf/control.h) and rejects what is out of range.

func appendHeader(dst []byte, t MessageType) []byte {
	dst = binary.NativeEndian.AppendUint32(dst, uint32(t))
	return binary.NativeEndian.AppendUint32(dst, 0) // reserved
}

// AppendPing encodes a ping: struct msg_ping.
func AppendPing(dst []byte, id, sentNs uint64) []byte {
	dst = appendHeader(dst, MsgPing)
	dst = binary.NativeEndian.AppendUint64(dst, id)
	return binary.NativeEndian.AppendUint64(dst, sentNs)
}

// AppendData encodes a data message: struct msg_data.
func AppendData(dst []byte, seq, value uint64) []byte {
	dst = appendHeader(dst, MsgData)
	dst = binary.NativeEndian.AppendUint64(dst, seq)
	return binary.NativeEndian.AppendUint64(dst, value)
}

// AppendSetPIDs encodes a set-pids message: struct msg_set_pids and the
// pids. An empty list clears the syscalls source's allow-list: the source
// then reports every process but excludePid (0 for none), which should be
// the process reading the records, so that it does not record its own
// reading.
func AppendSetPIDs(dst []byte, pids []uint32, excludePid uint32) []byte {
	dst = appendHeader(dst, MsgSetPIDs)
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
func AppendSource(dst []byte, t MessageType, source RecordType, sampleEvery uint32) []byte {
	dst = appendHeader(dst, t)
	dst = binary.NativeEndian.AppendUint32(dst, uint32(source))
	return binary.NativeEndian.AppendUint32(dst, sampleEvery)
}

// ParseReply decodes a ping's reply from the replies ring.
func ParseReply(rec []byte) (Reply, error) { return decode[Reply](rec) }

// DataChecksum folds value into sum as the control program does for each
// data message: (sum ^ value) * the 64-bit FNV prime, starting from 0. The
// order of the values changes the result.
func DataChecksum(sum, value uint64) uint64 { return (sum ^ value) * 0x100000001b3 }
