package consumer_test

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// The per-record path of `ringwatch run`, on plain memory: the ring walk of
// Consumer.Drain, then the accounting of the session's callback,
// accounting.Shard.Observe. No JSON, no kernel.

// runPathRingSize is transport.DefaultRingSize, the ring run reads by default.
const runPathRingSize = 4 << 20

// runPathProducer writes records of one source from several CPUs,
// interleaved as CPUs share a ring, each CPU numbering its records from 0.
// Exec records are as long as their filename, as the producers write them,
// and take their filenames in turn from runPathFilenames.
type runPathProducer struct {
	records [][]byte      // each record's memory, written in turn; its header is hdrs[i]
	hdrs    []*abi.Header // of records
	next    []uint64      // by CPU: the sequence number to write next
	bytes   uint64        // of every record written
}

// runPathFilenames are paths that exec records carry, of lengths seen on
// a Linux host: 72-byte to 104-byte records.
var runPathFilenames = []string{
	"/usr/bin/true",
	"/bin/sh",
	"/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
	"/usr/local/bin/node",
	"/usr/bin/git",
	"/usr/lib/git-core/git-remote-https",
}

func newRunPathProducer(typ abi.RecordType, cpus int) *runPathProducer {
	p := &runPathProducer{next: make([]uint64, cpus)}
	switch typ {
	case abi.RecordSyscall:
		r := &abi.SyscallRecord{Pid: 4242, Tid: 4243, Nr: 0}
		p.records = append(p.records, unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r)))
		p.hdrs = append(p.hdrs, &r.Hdr)
	case abi.RecordExec:
		for _, name := range runPathFilenames {
			r := &abi.ExecRecord{Pid: 4242, Ppid: 1}
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&r.Comm[0])), len(r.Comm)), name[strings.LastIndexByte(name, '/')+1:])
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&r.Filename[0])), len(r.Filename)), name)
			p.records = append(p.records, unsafe.Slice((*byte)(unsafe.Pointer(r)), abi.ExecRecordSize(name)))
			p.hdrs = append(p.hdrs, &r.Hdr)
		}
	default:
		panic("no layout for record type")
	}
	for _, h := range p.hdrs {
		h.Type = typ
	}
	return p
}

// fill writes records into m until it is full, stamped a few µs before now,
// and returns how many it wrote.
func (p *runPathProducer) fill(m *consumer.MemoryRing) int {
	stamp := uint64(consumer.MonotonicNow() - 3000)
	for n := 0; ; n++ {
		cpu, i := n%len(p.next), n%len(p.records)
		h := p.hdrs[i]
		h.Cpu, h.Seq, h.KtimeNs = uint32(cpu), p.next[cpu], stamp
		if !m.Put(p.records[i]) {
			return n
		}
		p.next[cpu]++
		p.bytes += uint64(len(p.records[i]))
	}
}

func (p *runPathProducer) written() (n uint64) {
	for _, s := range p.next {
		n += s
	}
	return n
}

var runPathSources = []struct {
	name string
	typ  abi.RecordType
}{
	{abi.SourceSyscalls, abi.RecordSyscall}, // 40-byte records
	{abi.SourceExec, abi.RecordExec},        // 64- to 104-byte records: runPathFilenames
}

// TestRunPathCountsEveryRecord drains full rings, past the ring's end
// several times, through the accounting: every record counted once, in
// order, none lost, and the consumer's own counts agree.
func TestRunPathCountsEveryRecord(t *testing.T) {
	for _, src := range runPathSources {
		t.Run(src.name, func(t *testing.T) {
			m := consumer.NewMemoryRing(64 << 10)
			c, err := m.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tr := accounting.NewTracker(1, 1)
			p := newRunPathProducer(src.typ, 3)
			for range 5 {
				n := p.fill(m)
				got, err := c.Drain(tr.Shard(0).Observe)
				if err != nil || got != n {
					t.Fatalf("drained %d of %d: %v", got, n, err)
				}
			}
			tally := tr.Source(src.name)
			want := accounting.SourceTally{Records: p.written(), Bytes: p.bytes}
			if tally != want {
				t.Fatalf("tally %+v, want %+v", tally, want)
			}
			if r := tr.Rings()[0]; r.Gaps != 0 || r.Invalid != 0 || r.Latency.Count != p.written() {
				t.Fatalf("ring tally %+v, want %d latencies and nothing else", r, p.written())
			}
			if s := c.Stats()[0]; s.Records != p.written() || s.Pending != 0 {
				t.Fatalf("consumer stats %+v, want %d records, nothing pending", s, p.written())
			}
		})
	}
}

// BenchmarkRunPath times what run does with every batch, on a full ring of
// each source's records from 2 CPUs: Consumer.Drain walks the ring and hands
// each batch to Shard.Observe. It reports ns per record, and allocations,
// which must be 0 per drain and so per record. Refilling the ring is not
// timed. The records are stamped as the refill starts, so their latency is
// about as long as a refill takes, a millisecond or so.
func BenchmarkRunPath(b *testing.B) {
	for _, src := range runPathSources {
		b.Run(src.name, func(b *testing.B) { benchmarkRunPath(b, src.typ, true) })
	}
}

// BenchmarkRunPathWalk is BenchmarkRunPath without the accounting, to
// tell the walk's part from the accounting's: its callback does nothing.
func BenchmarkRunPathWalk(b *testing.B) {
	for _, src := range runPathSources {
		b.Run(src.name, func(b *testing.B) { benchmarkRunPath(b, src.typ, false) })
	}
}

func benchmarkRunPath(b *testing.B, typ abi.RecordType, account bool) {
	m := consumer.NewMemoryRing(runPathRingSize)
	c, err := m.Consumer()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tr := accounting.NewTracker(1, 1)
	fn := func(consumer.Batch) {}
	if account {
		fn = tr.Shard(0).Observe // as internal/session hands it to Read
	}
	p := newRunPathProducer(typ, 2)
	records := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		n := p.fill(m)
		b.StartTimer()
		got, err := c.Drain(fn)
		if err != nil || got != n {
			b.Fatalf("drained %d of %d: %v", got, n, err)
		}
		records += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	if s := tr.Source(abi.SourceOf(typ)); account && (s.Records != p.written() || s.Gaps != 0 || s.Reordered != 0) {
		b.Fatalf("tally %+v, want %d records in order", s, p.written())
	}
}
