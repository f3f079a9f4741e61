package control

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/loader"
)

// Run these with, for example:
// go test -run '^$' -fuzz '^FuzzParseRequest$' -fuzztime 10m ./internal/control

// carriedSources is the sources a run carries, chosen by the bits of mask.
func carriedSources(mask uint8) []string {
	var carried []string
	for i, name := range []string{abi.SourceExec, abi.SourceSyscalls} {
		if mask&(1<<i) != 0 {
			carried = append(carried, name)
		}
	}
	return carried
}

// soundAction says whether a run carrying carried must accept a, by the
// rules the README and `ringwatch ctl -h` give: set_pids takes only pids,
// at most loader.MaxSyscallPIDs and none 0, and needs the syscalls source;
// set_sampling, pause and resume take a source the run carries, and only
// set_sampling an every.
func soundAction(a Action, carried []string) bool {
	switch a.Op {
	case OpSetPIDs:
		return a.Source == "" && a.Every == 0 && slices.Contains(carried, abi.SourceSyscalls) &&
			len(a.PIDs) <= loader.MaxSyscallPIDs && !slices.Contains(a.PIDs, 0)
	case OpSetSampling, OpPause, OpResume:
		return len(a.PIDs) == 0 && (a.Op == OpSetSampling || a.Every == 0) &&
			abi.RecordTypeOf(a.Source) != 0 && slices.Contains(carried, a.Source)
	}
	return false
}

// FuzzParseRequest gives the control socket's request parser arbitrary
// bytes. It must not panic; it must accept a request exactly when it is
// JSON with at least one action and every action is sound; and each
// message it returns must be the action's, byte for byte in the layout of
// bpf/control.h.
func FuzzParseRequest(f *testing.F) {
	for _, req := range []string{
		`{"actions":[{"op":"set_pids","pids":[1,2,300000]}]}`,
		`{"actions":[{"op":"set_pids"}]}` + "\n",
		`{"actions":[{"op":"set_sampling","source":"syscalls","every":10},{"op":"pause","source":"exec"}]}`,
		`{"actions":[{"op":"resume","source":"exec"},{"op":"set_sampling","source":"exec","every":0}]}`,
		`{"actions":[]}`,
		`{"actions":[{"op":"set_pids","pids":[0]}]}`,
		`{"actions":[{"op":"pause","source":"exec","every":3}]}`,
		`{"actions":[{"op":"set_sampling","source":"nope","every":2}]}`,
		`{"actions":[{"op":"bogus"}]}`,
		`{"actions":[{"op":"set_pids","pids":[-1]}]}`,
		`not json`,
	} {
		f.Add([]byte(req), uint8(3))
	}
	f.Add([]byte(`{"actions":[{"op":"set_pids","pids":[5]}]}`), uint8(1)) // no syscalls source
	f.Fuzz(func(t *testing.T, line []byte, carriedMask uint8) {
		carried := carriedSources(carriedMask)
		msgs, err := parseRequest(line, carried)

		var req Request
		jsonErr := json.Unmarshal(line, &req)
		sound := jsonErr == nil && len(req.Actions) > 0
		for _, a := range req.Actions {
			sound = sound && soundAction(a, carried)
		}
		if err != nil {
			if sound {
				t.Fatalf("parseRequest(%q) with sources %v: %v; every action is sound", line, carried, err)
			}
			if err.Error() == "" {
				t.Fatalf("parseRequest(%q) failed with an empty message", line)
			}
			return
		}
		if !sound {
			t.Fatalf("parseRequest(%q) with sources %v accepted an unsound request (JSON error %v, %d actions)",
				line, carried, jsonErr, len(req.Actions))
		}
		if len(msgs) != len(req.Actions) {
			t.Fatalf("%d messages for %d actions", len(msgs), len(req.Actions))
		}
		for i, a := range req.Actions {
			if problem := checkActionMessage(a, msgs[i]); problem != "" {
				t.Fatalf("action %d %+v: message %x: %s", i, a, msgs[i], problem)
			}
		}
	})
}

// checkActionMessage says what is wrong with msg as the message of a.
func checkActionMessage(a Action, msg []byte) string {
	if a.Op == OpSetPIDs {
		m, err := abi.Decode[abi.MsgSetPIDsLayout](msg)
		switch {
		case err != nil:
			return err.Error()
		case len(msg) != SetPIDsSize(len(a.PIDs)):
			return "wrong length"
		case m.Hdr.Type != abi.MsgSetPIDs || m.Hdr.Reserved != 0:
			return "wrong header"
		case m.Count != uint32(len(a.PIDs)) || m.ExcludePid != uint32(os.Getpid()):
			return "wrong count or excluded pid"
		}
		for i, pid := range a.PIDs {
			if binary.NativeEndian.Uint32(msg[setPIDsFixed+4*i:]) != pid {
				return "wrong pid"
			}
		}
		return ""
	}
	want := map[string]abi.MessageType{OpSetSampling: abi.MsgSetSampling, OpPause: abi.MsgPause, OpResume: abi.MsgResume}[a.Op]
	m, err := abi.Decode[abi.MsgSourceLayout](msg)
	switch {
	case err != nil:
		return err.Error()
	case len(msg) != SourceSize:
		return "wrong length"
	case m.Hdr.Type != want || m.Hdr.Reserved != 0:
		return "wrong header"
	case m.Source != uint32(abi.RecordTypeOf(a.Source)) || m.SampleEvery != a.Every:
		return "wrong source or sampling"
	}
	return ""
}

// layoutBytes is v's memory.
func layoutBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// checkDecode decodes in as a T, and fails t unless it fails exactly for
// input shorter than T and otherwise copies T's bytes from the start of in
// and nothing else. in has spare capacity of other bytes: a decoder that
// read past len(in) would differ between two calls.
func checkDecode[T any](t *testing.T, in []byte, decode func([]byte) (T, error)) (T, bool) {
	t.Helper()
	var results [2]T
	for i, fill := range []byte{0x00, 0xff} {
		buf := append(bytes.Clone(in), bytes.Repeat([]byte{fill}, 64)...)
		v, err := decode(buf[:len(in)])
		size := int(unsafe.Sizeof(v))
		if len(in) < size {
			if !errors.Is(err, abi.ErrShortRecord) {
				t.Fatalf("decoding %d bytes as a %d-byte %T: %v, want ErrShortRecord", len(in), size, v, err)
			}
			return v, false
		}
		if err != nil {
			t.Fatalf("decoding %d bytes as a %d-byte %T: %v", len(in), size, v, err)
		}
		if got := layoutBytes(&v); !bytes.Equal(got, in[:size]) {
			t.Fatalf("%T decoded from %x is %x", v, in[:size], got)
		}
		results[i] = v
	}
	if !bytes.Equal(layoutBytes(&results[0]), layoutBytes(&results[1])) {
		t.Fatalf("decoding %T depends on bytes past the input", results[0])
	}
	return results[0], true
}

// FuzzMessageCodec encodes messages built from the fuzzer's values after
// a prefix and decodes them in the layouts of bpf/control.h: the prefix
// must stay, the message must have its size, and decoding must give back
// every value. It also decodes the fuzzer's raw bytes as every message
// layout and as a reply (see checkDecode).
func FuzzMessageCodec(f *testing.F) {
	f.Add(uint8(0), uint64(7), uint64(9), uint32(0), []byte(nil), []byte(nil))
	f.Add(uint8(1), uint64(3), uint64(0xfeed), uint32(0), []byte{1}, AppendPing(nil, 1, 2))
	f.Add(uint8(2), uint64(abi.RecordSyscall), uint64(10), uint32(0), []byte{0, 0, 0}, AppendSource(nil, abi.MsgPause, abi.RecordExec, 0))
	f.Add(uint8(3), uint64(0), uint64(0), uint32(4242), AppendSetPIDs(nil, []uint32{11, 12}, 0), []byte("x"))
	f.Fuzz(func(t *testing.T, kind uint8, a, b uint64, c uint32, raw, prefix []byte) {
		for _, in := range [][]byte{raw, prefix} {
			checkDecode(t, in, abi.Decode[abi.MsgPingLayout])
			checkDecode(t, in, abi.Decode[abi.MsgDataLayout])
			checkDecode(t, in, abi.Decode[abi.MsgSourceLayout])
			checkDecode(t, in, abi.Decode[abi.MsgSetPIDsLayout])
			checkDecode(t, in, ParseReply)
		}

		dst := bytes.Clone(prefix)
		var msg []byte
		switch kind % 4 {
		case 0:
			msg = AppendPing(dst, a, b)
		case 1:
			msg = AppendData(dst, a, b)
		case 2:
			typ := []abi.MessageType{abi.MsgSetSampling, abi.MsgPause, abi.MsgResume}[c%3]
			msg = AppendSource(dst, typ, abi.RecordType(a), uint32(b))
		case 3:
			pids := make([]uint32, len(raw)/4)
			for i := range pids {
				pids[i] = binary.NativeEndian.Uint32(raw[4*i:])
			}
			msg = AppendSetPIDs(dst, pids, c)
		}
		if !bytes.Equal(msg[:len(prefix)], prefix) {
			t.Fatalf("encoding after %x changed it to %x", prefix, msg[:len(prefix)])
		}
		body := msg[len(prefix):]
		switch kind % 4 {
		case 0:
			m, ok := checkDecode(t, body, abi.Decode[abi.MsgPingLayout])
			if !ok || len(body) != PingSize || m.Hdr.Type != abi.MsgPing || m.Hdr.Reserved != 0 || m.Id != a || m.SentNs != b {
				t.Fatalf("ping(%d, %d) = %x, decodes as %+v", a, b, body, m)
			}
		case 1:
			m, ok := checkDecode(t, body, abi.Decode[abi.MsgDataLayout])
			if !ok || len(body) != DataSize || m.Hdr.Type != abi.MsgData || m.Hdr.Reserved != 0 || m.Seq != a || m.Value != b {
				t.Fatalf("data(%d, %d) = %x, decodes as %+v", a, b, body, m)
			}
		case 2:
			want := []abi.MessageType{abi.MsgSetSampling, abi.MsgPause, abi.MsgResume}[c%3]
			m, ok := checkDecode(t, body, abi.Decode[abi.MsgSourceLayout])
			if !ok || len(body) != SourceSize || m.Hdr.Type != want || m.Hdr.Reserved != 0 ||
				m.Source != uint32(a) || m.SampleEvery != uint32(b) {
				t.Fatalf("source(%v, %d, %d) = %x, decodes as %+v", want, uint32(a), uint32(b), body, m)
			}
		case 3:
			n := len(raw) / 4
			m, ok := checkDecode(t, body, abi.Decode[abi.MsgSetPIDsLayout])
			if !ok || len(body) != SetPIDsSize(n) || m.Hdr.Type != abi.MsgSetPIDs || m.Hdr.Reserved != 0 ||
				m.Count != uint32(n) || m.ExcludePid != c {
				t.Fatalf("set_pids(%d pids, exclude %d) = %x, decodes as %+v", n, c, body, m)
			}
			if !bytes.Equal(body[setPIDsFixed:], raw[:4*n]) {
				t.Fatalf("set_pids carries pids %x, want %x", body[setPIDsFixed:], raw[:4*n])
			}
		}
	})
}
