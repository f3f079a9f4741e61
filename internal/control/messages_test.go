package control

import (
	"encoding/binary"
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
)

func TestMessageEncodingMatchesTheLayouts(t *testing.T) {
	ping := AppendPing(nil, 7, 9)
	if p, err := abi.Decode[abi.MsgPingLayout](ping); err != nil || len(ping) != PingSize ||
		p.Hdr.Type != abi.MsgPing || p.Id != 7 || p.SentNs != 9 {
		t.Errorf("ping %x decodes as %+v (%v)", ping, p, err)
	}
	data := AppendData(nil, 3, 0xfeed)
	if d, err := abi.Decode[abi.MsgDataLayout](data); err != nil || len(data) != DataSize ||
		d.Hdr.Type != abi.MsgData || d.Seq != 3 || d.Value != 0xfeed {
		t.Errorf("data %x decodes as %+v (%v)", data, d, err)
	}
	src := AppendSource(nil, abi.MsgSetSampling, abi.RecordSyscall, 10)
	if s, err := abi.Decode[abi.MsgSourceLayout](src); err != nil || len(src) != SourceSize ||
		s.Hdr.Type != abi.MsgSetSampling || s.Source != uint32(abi.RecordSyscall) || s.SampleEvery != 10 {
		t.Errorf("source %x decodes as %+v (%v)", src, s, err)
	}
	pids := AppendSetPIDs(nil, []uint32{11, 12}, 0)
	if h, err := abi.Decode[abi.MsgSetPIDsLayout](pids); err != nil || len(pids) != SetPIDsSize(2) ||
		h.Hdr.Type != abi.MsgSetPIDs || h.Count != 2 || binary.NativeEndian.Uint32(pids[SetPIDsSize(1):]) != 12 {
		t.Errorf("set pids %x decodes as %+v (%v)", pids, h, err)
	}
	// With room given, encoding allocates nothing.
	buf := make([]byte, 0, PingSize)
	if n := testing.AllocsPerRun(100, func() { _ = AppendPing(buf, 1, 2) }); n != 0 {
		t.Errorf("AppendPing into a buffer with room allocates %v times", n)
	}
	if abi.MsgSetPIDs.String() != "set_pids" || abi.MessageType(42).String() != "type_42" || abi.RejectLength.String() != "bad length" {
		t.Errorf("names: %s %s %s", abi.MsgSetPIDs, abi.MessageType(42), abi.RejectLength)
	}
}

func TestDataChecksumIsOrderSensitive(t *testing.T) {
	var ab, ba uint64
	ab = DataChecksum(DataChecksum(0, 1), 2)
	ba = DataChecksum(DataChecksum(0, 2), 1)
	if ab == ba {
		t.Fatalf("checksum of 1,2 equals that of 2,1: %#x", ab)
	}
}
