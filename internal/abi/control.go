package abi

import "strconv"

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

	// The messages: struct msg_ping, msg_data, msg_source (set sampling,
	// pause, resume) and msg_set_pids (followed by the pids).
	MsgPingLayout    = controlMsgPing
	MsgDataLayout    = controlMsgData
	MsgSourceLayout  = controlMsgSource
	MsgSetPIDsLayout = controlMsgSetPids
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
