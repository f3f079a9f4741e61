package control

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/userring"
)

// controlRig is a loaded control program with a writer on its user ring and
// a consumer of its replies, all closed when the test ends.
type controlRig struct {
	ctl     *loader.ControlProgram
	w       *userring.Writer
	replies *consumer.Consumer
}

func openControlRig(t *testing.T, p *loader.Producers) *controlRig {
	t.Helper()
	var (
		ctl *loader.ControlProgram
		err error
	)
	if p != nil {
		ctl, err = p.OpenControl(loader.ControlOptions{})
	} else {
		ctl, err = loader.OpenControl(loader.ControlOptions{})
	}
	if err != nil {
		t.Fatalf("open control: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	w, err := userring.Open(ctl.UserRing())
	if err != nil {
		t.Fatalf("userring.Open: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	replies, err := consumer.Open(consumer.RingBuffer("replies", ctl.Replies()))
	if err != nil {
		t.Fatalf("consumer.Open: %v", err)
	}
	t.Cleanup(func() { replies.Close() })
	return &controlRig{ctl, w, replies}
}

// send writes each message into the user ring and rings the doorbell once.
func (r *controlRig) send(t *testing.T, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		if err := r.w.Write(m); err != nil {
			t.Fatalf("write message %x: %v", m, err)
		}
	}
	n, err := r.ctl.Doorbell()
	if err != nil {
		t.Fatalf("Doorbell: %v", err)
	}
	if n != len(msgs) {
		t.Fatalf("the doorbell drained %d messages, %d were written", n, len(msgs))
	}
}

// reply reads the next ping reply; the doorbell has already put it in the
// ring, so the timeout only bounds a failure.
func (r *controlRig) reply(t *testing.T) abi.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []abi.Reply
	for len(got) == 0 {
		if _, err := r.replies.Read(ctx, func(b consumer.Batch) {
			for _, rec := range b.Records {
				rep, err := ParseReply(rec)
				if err != nil {
					t.Errorf("reply: %v", err)
				}
				got = append(got, rep)
			}
		}); err != nil {
			t.Fatalf("read reply: %v", err)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d replies where one was due: %+v", len(got), got)
	}
	return got[0]
}

func (r *controlRig) stats(t *testing.T) abi.DrainStats {
	t.Helper()
	st, err := r.ctl.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPingIsAnsweredWithItsTimestamp(t *testing.T) {
	testenv.RequireUserRing(t)
	r := openControlRig(t, nil)
	for i := range uint64(3) {
		sent := uint64(consumer.MonotonicNow())
		r.send(t, AppendPing(nil, 100+i, sent))
		rep := r.reply(t)
		if rep.Id != 100+i || rep.SentNs != sent {
			t.Fatalf("reply %+v does not echo ping %d sent at %d", rep, 100+i, sent)
		}
		if rep.DrainedNs < sent || rep.DrainedNs > uint64(consumer.MonotonicNow()) {
			t.Errorf("kernel read the ping at %d, outside [%d, now]", rep.DrainedNs, sent)
		}
		if rep.Accepted != i+1 || rep.Rejected != 0 {
			t.Errorf("reply %d counts %d accepted, %d rejected; want %d and 0", i, rep.Accepted, rep.Rejected, i+1)
		}
	}
	if st := r.stats(t); st.Accepted[abi.MsgPing] != 3 || st.RepliesLost != 0 || st.Drains != 3 {
		t.Errorf("stats: %+v", st)
	}
}

// TestMalformedMessagesAreCountedAndSkipped writes every kind of bad
// message the control program must refuse, in one drain, between good
// ones, and checks that each is counted under its reason, that nothing
// they ask for happens, and that the good messages after them still work.
func TestMalformedMessagesAreCountedAndSkipped(t *testing.T) {
	testenv.RequireUserRing(t)
	p, _ := openProducers(t, loader.Options{Sources: parseSources(t, abi.SourceSyscalls), SyscallPIDs: []uint32{4242}}, 0)
	r := openControlRig(t, p)

	withReserved := func(m []byte) []byte { binary.NativeEndian.PutUint32(m[4:], 1); return m }
	withCount := func(m []byte, n uint32) []byte { binary.NativeEndian.PutUint32(m[8:], n); return m }
	typ := func(t uint32) []byte { return binary.NativeEndian.AppendUint32(nil, t) }
	bad := []struct {
		name   string
		msg    []byte
		reason abi.RejectReason
	}{
		{"empty", []byte{}, abi.RejectLength},
		{"shorter than a header", []byte{1, 0, 0}, abi.RejectLength},
		{"type 0", append(typ(0), 0, 0, 0, 0), abi.RejectUnknownType},
		{"type 99", append(typ(99), make([]byte, 20)...), abi.RejectUnknownType},
		{"ping short", AppendPing(nil, 1, 1)[:PingSize-1], abi.RejectLength},
		{"ping long", append(AppendPing(nil, 1, 1), 0), abi.RejectLength},
		{"ping reserved", withReserved(AppendPing(nil, 1, 1)), abi.RejectValue},
		{"data short", AppendData(nil, 0, 1)[:12], abi.RejectLength},
		{"pause of source 0", AppendSource(nil, abi.MsgPause, 0, 0), abi.RejectValue},
		{"pause of source 99", AppendSource(nil, abi.MsgPause, 99, 0), abi.RejectValue},
		{"pause with a rate", AppendSource(nil, abi.MsgPause, abi.RecordSyscall, 5), abi.RejectValue},
		{"sampling long", append(AppendSource(nil, abi.MsgSetSampling, abi.RecordSyscall, 5), 0, 0, 0, 0), abi.RejectLength},
		{"pids header short", AppendSetPIDs(nil, nil, 0)[:10], abi.RejectLength},
		{"pids count beyond the list", withCount(AppendSetPIDs(nil, []uint32{1, 2}, 0), 3), abi.RejectLength},
		{"pids count short of the list", withCount(AppendSetPIDs(nil, []uint32{1, 2}, 0), 1), abi.RejectLength},
		{"pids too many", withCount(AppendSetPIDs(nil, nil, 0), loader.MaxSyscallPIDs+1), abi.RejectValue},
		{"pid 0", AppendSetPIDs(nil, []uint32{77, 0}, 0), abi.RejectValue},
	}
	var msgs [][]byte
	want := map[abi.RejectReason]uint64{}
	for _, b := range bad {
		msgs = append(msgs, b.msg)
		want[b.reason]++
	}
	const seq0 = 0
	msgs = append(msgs, AppendData(nil, seq0, 5), AppendPing(nil, 9, 1))
	r.send(t, msgs...)

	rep := r.reply(t)
	if rep.Id != 9 || rep.Rejected != uint64(len(bad)) || rep.Accepted != 2 {
		t.Errorf("reply after the bad messages: %+v; want id 9, %d rejected, 2 accepted", rep, len(bad))
	}
	st := r.stats(t)
	for reason := range abi.RejectReasonLimit {
		if st.Rejected[reason] != want[reason] {
			t.Errorf("rejected for %s: %d, want %d", reason, st.Rejected[reason], want[reason])
		}
	}
	if st.Accepted[abi.MsgData] != 1 || st.DataChecksum != DataChecksum(0, 5) || st.DataOutOfOrder != 0 {
		t.Errorf("the good data message after the bad ones: %+v", st)
	}

	// None of the bad messages changed the producers' settings.
	for typ := abi.RecordType(1); typ < abi.RecordTypeLimit; typ++ {
		var cfg abi.SourceConfig
		if err := p.Map(abi.MapSourceConfigs).Lookup(uint32(typ), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg != (abi.SourceConfig{}) {
			t.Errorf("source %d settings changed to %+v", typ, cfg)
		}
	}
	if got := allowList(t, p); !slices.Equal(got, []uint32{4242}) {
		t.Errorf("allow-list changed to %v", got)
	}

	// A good control message after all that still takes effect.
	r.send(t, AppendSetPIDs(nil, []uint32{31, 30}, 0), AppendPing(nil, 10, 1))
	if rep := r.reply(t); rep.Id != 10 || rep.Rejected != uint64(len(bad)) {
		t.Errorf("reply after a good set-pids: %+v", rep)
	}
	if got := allowList(t, p); !slices.Equal(got, []uint32{30, 31}) {
		t.Errorf("allow-list after a good set-pids: %v, want [30 31]", got)
	}
}

// TestMessagesTakeEffectInRingOrder sends control messages, data and
// pings in one drain: each reply's count places its ping exactly, and the
// last of two set-pids messages is the one that holds.
func TestMessagesTakeEffectInRingOrder(t *testing.T) {
	testenv.RequireUserRing(t)
	p, _ := openProducers(t, loader.Options{Sources: parseSources(t, abi.SourceSyscalls)}, 0)
	r := openControlRig(t, p)
	r.send(t,
		AppendSetPIDs(nil, []uint32{10}, 0), AppendData(nil, 0, 1), AppendPing(nil, 1, 0),
		AppendSetPIDs(nil, []uint32{20}, 0), AppendData(nil, 1, 2), AppendData(nil, 2, 3), AppendPing(nil, 2, 0),
	)
	// The doorbell has returned: both replies are in the ring.
	var got []abi.Reply
	if _, err := r.replies.Drain(func(b consumer.Batch) {
		for _, rec := range b.Records {
			rep, err := ParseReply(rec)
			if err != nil {
				t.Errorf("reply: %v", err)
			}
			got = append(got, rep)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Id != 1 || got[0].Accepted != 3 || got[1].Id != 2 || got[1].Accepted != 7 {
		t.Fatalf("replies %+v; want ping 1 as the 3rd message accepted, ping 2 as the 7th", got)
	}
	if got[0].DrainedNs > got[1].DrainedNs {
		t.Errorf("ping 1 read at %d, after ping 2 at %d", got[0].DrainedNs, got[1].DrainedNs)
	}
	if pids := allowList(t, p); !slices.Equal(pids, []uint32{20}) {
		t.Errorf("allow-list %v, want the later message's [20]", pids)
	}
	if st := r.stats(t); st.DataNextSeq != 3 || st.DataOutOfOrder != 0 {
		t.Errorf("data: %+v", st)
	}
}

// allowList reads the syscalls source's allow-list, sorted, or nil when
// the source reports every process.
func allowList(t *testing.T, p *loader.Producers) []uint32 {
	t.Helper()
	var filter abi.SyscallFilter
	if err := p.Map(abi.MapSyscallConfig).Lookup(uint32(0), &filter); err != nil {
		t.Fatal(err)
	}
	var pids []uint32
	var pid uint32
	var tag uint8
	it := p.Map(abi.MapSyscallPids).Iterate()
	for it.Next(&pid, &tag) {
		pids = append(pids, pid)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(pids)
	if filter.AllowList == 0 {
		if len(pids) > 0 {
			t.Errorf("allow-list is off, yet holds %v", pids)
		}
		return nil
	}
	return pids
}

func TestSetPIDsReplacesTheList(t *testing.T) {
	testenv.RequireUserRing(t)
	p, _ := openProducers(t, loader.Options{Sources: parseSources(t, abi.SourceSyscalls), SyscallPIDs: []uint32{1, 2}}, 0)
	r := openControlRig(t, p)
	big := make([]uint32, loader.MaxSyscallPIDs)
	for i := range big {
		big[i] = uint32(100_000 + i)
	}
	for _, step := range []struct {
		pids []uint32
		want []uint32
	}{
		{[]uint32{2, 3}, []uint32{2, 3}},
		{[]uint32{3, 3, 4}, []uint32{3, 4}}, // a pid twice is listed once
		{nil, nil},                          // every process again
		{[]uint32{5}, []uint32{5}},
		{big, big}, // a full list replaces a partial one: no room is lacking
		{[]uint32{6}, []uint32{6}},
	} {
		r.send(t, AppendSetPIDs(nil, step.pids, 0))
		if got := allowList(t, p); !slices.Equal(got, step.want) {
			t.Fatalf("after set-pids %v the allow-list is %v", step.pids, got)
		}
	}
	// Clearing the list leaves out the process the message names.
	r.send(t, AppendSetPIDs(nil, nil, 4321))
	var filter abi.SyscallFilter
	if err := p.Map(abi.MapSyscallConfig).Lookup(uint32(0), &filter); err != nil {
		t.Fatal(err)
	}
	if filter != (abi.SyscallFilter{AllowList: 0, ExcludePid: 4321}) || allowList(t, p) != nil {
		t.Errorf("after clearing with 4321 left out: filter %+v, list %v", filter, allowList(t, p))
	}
	if st := r.stats(t); st.Accepted[abi.MsgSetPIDs] != 7 || st.RejectedTotal() != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestSetPIDsChangesSyscallsFromTheNextRecord follows two processes: the
// syscalls source first reports only A; a set-pids message naming B is
// written and drained; from then on every getpid of B is reported and not
// one of A's.
func TestSetPIDsChangesSyscallsFromTheNextRecord(t *testing.T) {
	testenv.RequireUserRing(t)
	a, b := testenv.StartSyscallChild(t), testenv.StartSyscallChild(t)
	p, c := openProducers(t, loader.Options{
		Sources:     parseSources(t, abi.SourceSyscalls),
		SyscallPIDs: []uint32{uint32(a.Pid)},
	}, 4<<20)
	r := openControlRig(t, p)

	// getpids counts each child's getpid records that Drain delivers.
	getpids := func() (fromA, fromB int) {
		t.Helper()
		if _, err := c.Drain(func(batch consumer.Batch) {
			for _, rec := range batch.Records {
				s, err := abi.DecodeSyscall(rec)
				if err != nil || s.Nr != unix.SYS_GETPID {
					continue
				}
				// By thread: the child's Go runtime makes getpid calls of
				// its own on other threads.
				switch {
				case s.Pid == uint32(a.Pid) && s.Tid == uint32(a.Tid):
					fromA++
				case s.Pid == uint32(b.Pid) && s.Tid == uint32(b.Tid):
					fromB++
				}
			}
		}); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		return fromA, fromB
	}

	const n = 1000
	// The records are in the ring when Getpid returns: the raw tracepoint
	// runs inside each system call.
	a.Getpid(t, n)
	b.Getpid(t, n)
	if fromA, fromB := getpids(); fromA != n || fromB != 0 {
		t.Fatalf("before the message: %d getpids of A, %d of B; want %d and 0", fromA, fromB, n)
	}

	r.send(t, AppendSetPIDs(nil, []uint32{uint32(b.Pid)}, 0))
	a.Getpid(t, n)
	b.Getpid(t, n)
	if fromA, fromB := getpids(); fromA != 0 || fromB != n {
		t.Fatalf("after the message: %d getpids of A, %d of B; want 0 and %d", fromA, fromB, n)
	}
	counters, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if counters[0].Lost != 0 {
		t.Errorf("%d records lost", counters[0].Lost)
	}
}

// TestPauseResumeAndSampling drives the exec source's settings through
// messages and watches exec events of known children.
func TestPauseResumeAndSampling(t *testing.T) {
	testenv.RequireUserRing(t)
	testenv.RequireTracefs(t)
	p, c := openProducers(t, loader.Options{Sources: parseSources(t, abi.SourceExec)}, 0)
	r := openControlRig(t, p)
	self := uint32(os.Getpid())

	// spawn runs /bin/true n times and returns how many of those execs
	// reached the ring, and the source's skipped count grew by.
	spawn := func(n int) (seen int, skipped uint64) {
		t.Helper()
		before, err := p.Counters()
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := exec.Command("/bin/true").Run(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Drain(func(b consumer.Batch) {
			for _, rec := range b.Records {
				if e, err := abi.DecodeExec(rec); err == nil && e.Ppid == self && e.FilenameString() == "/bin/true" {
					seen++
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		after, err := p.Counters()
		if err != nil {
			t.Fatal(err)
		}
		return seen, after[0].Skipped - before[0].Skipped
	}

	const n = 20
	if seen, _ := spawn(n); seen != n {
		t.Fatalf("before any message: %d of %d execs seen", seen, n)
	}
	r.send(t, AppendSource(nil, abi.MsgPause, abi.RecordExec, 0))
	if seen, skipped := spawn(n); seen != 0 || skipped < n {
		t.Fatalf("paused: %d execs seen, %d skipped; want 0 and at least %d", seen, skipped, n)
	}
	r.send(t, AppendSource(nil, abi.MsgResume, abi.RecordExec, 0))
	if seen, _ := spawn(n); seen != n {
		t.Fatalf("resumed: %d of %d execs seen", seen, n)
	}
	// One in 5. The rule (bpf/ringwatch.c, begin_record) is a countdown
	// per CPU: an event that finds it at 0 is recorded and sets it to 4,
	// and each event that finds it above 0 is skipped and lowers it. So,
	// on each CPU, the attempts and skips of a window of E events follow
	// from the countdown c0 at its start: the first min(c0, E) are
	// skipped, then one in every 5 of the rest is recorded, starting with
	// the first. Other processes exec too; the rule covers their events
	// as well as our children's, so the check is exact all the same.
	const every = 5
	r.send(t, AppendSource(nil, abi.MsgSetSampling, abi.RecordExec, every))
	before := perCPU(t, p)
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	after := perCPU(t, p)
	// The consumer's count of the window's records on each CPU, by their
	// sequence numbers: attempt k on a CPU carries sequence number k.
	inWindow := make([]uint64, len(after))
	if _, err := c.Drain(func(b consumer.Batch) {
		for _, rec := range b.Records {
			h, err := abi.ParseHeader(rec)
			if err != nil || h.Type != abi.RecordExec || int(h.Cpu) >= len(after) {
				continue
			}
			if h.Seq >= before[h.Cpu].Attempts && h.Seq < after[h.Cpu].Attempts {
				inWindow[h.Cpu]++
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	var events, recorded uint64
	for cpu := range after {
		attempted := after[cpu].Attempts - before[cpu].Attempts
		skipped := after[cpu].Skipped - before[cpu].Skipped
		e, c0 := attempted+skipped, before[cpu].SampleCountdown
		rest := e - min(c0, e)
		wantAttempts, wantCountdown := (rest+every-1)/every, c0-min(c0, e)
		if rest > 0 {
			wantCountdown = every - 1 - (rest-1)%every
		}
		if attempted != wantAttempts || after[cpu].SampleCountdown != wantCountdown || after[cpu].Lost != before[cpu].Lost {
			t.Errorf("CPU %d, one in %d: %d events from countdown %d gave %d attempts and countdown %d (lost %d); the rule gives %d and %d",
				cpu, every, e, c0, attempted, after[cpu].SampleCountdown, after[cpu].Lost-before[cpu].Lost, wantAttempts, wantCountdown)
		}
		if inWindow[cpu] != attempted {
			t.Errorf("CPU %d: the consumer read %d records of the window, the kernel counted %d attempts", cpu, inWindow[cpu], attempted)
		}
		events += e
		recorded += attempted
	}
	if events < n || recorded == 0 || recorded == events {
		t.Fatalf("sampling one in %d: %d exec events, %d recorded: the test proves nothing", every, events, recorded)
	}
	if st := r.stats(t); st.Accepted[abi.MsgPause] != 1 || st.Accepted[abi.MsgResume] != 1 || st.Accepted[abi.MsgSetSampling] != 1 {
		t.Errorf("stats: %+v", st)
	}
}

// perCPU reads the exec source's counters on each CPU.
func perCPU(t *testing.T, p *loader.Producers) []abi.SourceCounters {
	t.Helper()
	counters, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return counters[0].PerCPU
}

func TestControlCloseLeavesNoBPFObjects(t *testing.T) {
	testenv.RequireUserRing(t)
	before := testenv.Snapshot(t)
	tr, err := transport.New(abi.Ringbuf, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.Open(loader.Options{Sources: parseSources(t, abi.SourceSyscalls), Transport: tr})
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	ctl, err := p.OpenControl(loader.ControlOptions{})
	if err != nil {
		p.Close()
		tr.Close()
		t.Fatal(err)
	}
	standalone, err := loader.OpenControl(loader.ControlOptions{UserRingSize: 2 * os.Getpagesize()})
	if err != nil {
		ctl.Close()
		p.Close()
		tr.Close()
		t.Fatal(err)
	}
	w, err := userring.Open(ctl.UserRing())
	if err == nil {
		err = w.Write(AppendPing(nil, 1, 1))
	}
	if err == nil {
		_, err = ctl.Doorbell()
	}
	if err != nil {
		t.Error(err)
	}
	// The control program, and its user ring, replies, stats and scratch
	// maps, twice: the check below must have something to find.
	ours := testenv.Snapshot(t).Added(before)
	if len(ours.Programs) < 3 || len(ours.Maps) < 4+2*4 {
		t.Errorf("while open, only these BPF objects are new: %+v", ours)
	}
	if w != nil {
		err = errors.Join(err, w.Close())
	}
	// The producers (and their transport) first: the control program keeps
	// their maps alive, and closing it must free them.
	err = errors.Join(err, p.Close(), tr.Close(), ctl.Close(), standalone.Close(), ctl.Close())
	if err != nil {
		t.Errorf("close: %v", err)
	}
	testenv.WaitForObjects(t, before)
}

func TestOpenControlRejectsBadRingSize(t *testing.T) {
	ctl, err := loader.OpenControl(loader.ControlOptions{UserRingSize: 5000})
	if err == nil {
		ctl.Close()
		t.Fatal("OpenControl accepted a 5000-byte user ring")
	}
	if !errors.Is(err, abi.ErrInvalidOption) {
		t.Fatalf("err = %v, want ErrInvalidOption", err)
	}
}
