package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// syscallRecord is a syscall record of the given CPU and sequence number.
func syscallRecord(cpu uint32, seq uint64) []byte {
	r := abi.SyscallRecord{Hdr: abi.Header{KtimeNs: 1000 + seq, Seq: seq, Type: abi.RecordSyscall, Cpu: cpu},
		Pid: 10, Tid: 11, Nr: 39}
	return bytes.Clone(bytesOf(&r))
}

// execRecord is an exec record of the given CPU and sequence number, as
// long as its filename needs: 72 bytes.
func execRecord(cpu uint32, seq uint64) []byte {
	return execRecordOf(cpu, seq, "/usr/bin/true")
}

// longExecRecord is an exec record of a 254-byte filename: 312 bytes.
func longExecRecord(cpu uint32, seq uint64) []byte {
	return execRecordOf(cpu, seq, "/"+strings.Repeat("x", 253))
}

func execRecordOf(cpu uint32, seq uint64, filename string) []byte {
	r := abi.ExecRecord{Hdr: abi.Header{KtimeNs: 1000 + seq, Seq: seq, Type: abi.RecordExec, Cpu: cpu},
		Pid: 4242, Ppid: 4200, Uid: 1000}
	setCString(r.Comm[:], "true")
	setCString(r.Filename[:], filename)
	return bytes.Clone(execBytes(&r))
}

// lockedBuffer is a bytes.Buffer for one writer and a reader after Close.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

type line struct {
	Type string `json:"type"`
	CPU  uint32 `json:"cpu"`
	Seq  uint64 `json:"seq"`
}

// parseLines parses every line of out as JSON.
func parseLines(t *testing.T, out []byte) []line {
	t.Helper()
	var lines []line
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", len(lines)+1, err, sc.Bytes())
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// withTimeout fails the test if fn does not return within d: a deadlock.
func withTimeout(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s still blocked after %v", what, d)
	}
}

// waitStalled waits until a goroutine is blocked in Writer.get, waiting for
// a free block, as the runtime's own goroutine dump shows it, and fails t
// if none is within 10 seconds or if done delivers first: the writer
// returned instead of waiting.
func waitStalled(t *testing.T, done <-chan error) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("Write returned %v while the output was stalled", err)
		default:
		}
		// Each goroutine's dump starts "goroutine N [state]:" and lists
		// its frames; get waits in a select.
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, " [select") && strings.Contains(g, "output.(*Writer).get(") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no Write is waiting for a free block after 10s")
		}
	}
}

// TestWriterExact writes batches of every size, some larger than a block,
// with records of both kinds and one larger than a block, and finds every
// record once, in order.
func TestWriterExact(t *testing.T) {
	var out lockedBuffer
	w := NewWriterConfig(&out, Config{BlockSize: 256, Blocks: 3, ChunkSize: 100})
	var seq uint64
	for size := range 40 {
		batch := make([][]byte, size)
		for i := range batch {
			if (seq % 7) == 3 {
				batch[i] = longExecRecord(0, seq) // 312 bytes: more than a block
			} else {
				batch[i] = syscallRecord(0, seq)
			}
			seq++
		}
		if err := w.Write(batch); err != nil {
			t.Fatal(err)
		}
		// The records are copied: the caller may reuse their memory.
		for _, rec := range batch {
			clear(rec)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, out.Bytes())
	if uint64(len(lines)) != seq {
		t.Fatalf("%d lines for %d records", len(lines), seq)
	}
	for i, l := range lines {
		want := "syscalls"
		if i%7 == 3 {
			want = "exec"
		}
		if l.Seq != uint64(i) || l.Type != want {
			t.Fatalf("line %d: %+v, want seq %d of %s", i, l, i, want)
		}
	}
	if s := w.Stats(); s.Records != seq || s.Invalid != 0 || s.Discarded != 0 || s.Bytes != uint64(len(out.Bytes())) {
		t.Errorf("stats %+v, want %d records and %d bytes", s, seq, len(out.Bytes()))
	}
}

// TestWriterOrderPerProducer has several goroutines, each a consumer of
// its own ring, write concurrently through a pool small enough that they
// wait for each other: every consumer's records come out whole and in
// order.
func TestWriterOrderPerProducer(t *testing.T) {
	const consumers, batches, perBatch = 6, 200, 37
	var out lockedBuffer
	w := NewWriterConfig(&out, Config{BlockSize: 40 * 16, Blocks: 4, ChunkSize: 1 << 10})
	var wg sync.WaitGroup
	for c := range consumers {
		wg.Go(func() {
			batch := make([][]byte, perBatch)
			for i := range batch {
				batch[i] = make([]byte, 40)
			}
			var seq uint64
			for range batches {
				for i := range batch {
					copy(batch[i], syscallRecord(uint32(c), seq))
					seq++
				}
				if err := w.Write(batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	withTimeout(t, 30*time.Second, "writers", wg.Wait)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]uint64, consumers)
	for i, l := range parseLines(t, out.Bytes()) {
		if l.CPU >= consumers {
			t.Fatalf("line %d: cpu %d", i, l.CPU)
		}
		if l.Seq != next[l.CPU] {
			t.Fatalf("line %d: cpu %d seq %d, want %d", i, l.CPU, l.Seq, next[l.CPU])
		}
		next[l.CPU]++
	}
	for c, n := range next {
		if n != batches*perBatch {
			t.Errorf("consumer %d: %d lines, want %d", c, n, batches*perBatch)
		}
	}
	if s := w.Stats(); s.Stalls == 0 {
		t.Logf("no stall in %+v", s)
	}
}

// gatedWriter blocks its first Write until released.
type gatedWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	out     lockedBuffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.out.Write(p)
}

// TestWriterBackpressure stalls the output: the caller must block once
// every block is queued, rather than drop, and every record must come out
// once the output moves again.
func TestWriterBackpressure(t *testing.T) {
	const blocks, batches, perBatch = 3, 50, 10
	g := &gatedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	// A batch fills a block.
	w := NewWriterConfig(g, Config{BlockSize: 40 * perBatch, Blocks: blocks})
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		var seq uint64
		for range batches {
			batch := make([][]byte, perBatch)
			for i := range batch {
				batch[i] = syscallRecord(0, seq)
				seq++
			}
			if err := w.Write(batch); err != nil {
				done <- err
				return
			}
			written.Add(1)
		}
		done <- nil
	}()
	<-g.entered
	// The encoder is blocked in a write of the JSON of the batches it took
	// before, whose blocks it freed; the other blocks fill, then Write
	// waits for a free block, and nothing moves.
	waitStalled(t, done)
	stalledSince := time.Now()
	n := written.Load()
	encoded := int64(w.Stats().Encoded) / perBatch
	if n != encoded+blocks || n >= batches {
		t.Fatalf("while the output was blocked: %d batches written, %d encoded; want %d encoded and %d queued",
			n, encoded, encoded, blocks)
	}
	stalled := time.Since(stalledSince)
	close(g.release)
	withTimeout(t, 10*time.Second, "writer after release", func() {
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, g.out.Bytes())
	if len(lines) != batches*perBatch {
		t.Fatalf("%d lines, want %d", len(lines), batches*perBatch)
	}
	for i, l := range lines {
		if l.Seq != uint64(i) {
			t.Fatalf("line %d: seq %d", i, l.Seq)
		}
	}
	// The stall the test watched lasted at least from when it was seen to
	// when the output was released.
	if s := w.Stats(); s.Stalls == 0 || s.StallTime < stalled {
		t.Errorf("stats %+v: the stall of at least %v is not counted", s, stalled)
	}
}

// brokenPipe writes some bytes, then fails as stdout does once its reader
// has gone.
type brokenPipe struct {
	writes atomic.Int64
}

var errBrokenPipe = &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.EPIPE}

func (p *brokenPipe) Write(b []byte) (int, error) {
	if p.writes.Add(1) > 2 {
		return 0, errBrokenPipe
	}
	return len(b), nil
}

// TestWriterError breaks the output under several writers: the error
// reaches OnError once and every writer, and nobody deadlocks.
func TestWriterError(t *testing.T) {
	var calls atomic.Int64
	var hookErr error
	w := NewWriterConfig(&brokenPipe{}, Config{BlockSize: 400, Blocks: 2, ChunkSize: 1,
		OnError: func(err error) { calls.Add(1); hookErr = err }})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for c := range 4 {
		wg.Go(func() {
			batch := [][]byte{syscallRecord(uint32(c), 0), syscallRecord(uint32(c), 1), execRecord(uint32(c), 2)}
			for range 10000 {
				if err := w.Write(batch); err != nil {
					if !errors.Is(err, syscall.EPIPE) {
						t.Errorf("Write: %v, want EPIPE", err)
					}
					failed.Add(1)
					return
				}
			}
		})
	}
	withTimeout(t, 30*time.Second, "writers after EPIPE", wg.Wait)
	if n := failed.Load(); n != 4 {
		t.Errorf("%d of 4 writers saw the error", n)
	}
	if err := w.Flush(); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Flush: %v, want EPIPE", err)
	}
	for range 2 {
		if err := w.Close(); !errors.Is(err, syscall.EPIPE) {
			t.Errorf("Close: %v, want EPIPE", err)
		}
	}
	if n := calls.Load(); n != 1 || !errors.Is(hookErr, syscall.EPIPE) {
		t.Errorf("OnError called %d times, with %v", n, hookErr)
	}
	if err := w.Write([][]byte{syscallRecord(0, 0)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
}

func TestWriterCloseIsIdempotent(t *testing.T) {
	var out lockedBuffer
	w := NewWriter(&out)
	if err := w.Write([][]byte{syscallRecord(1, 5)}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
	if err := w.Write(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if lines := parseLines(t, out.Bytes()); len(lines) != 1 || lines[0].Seq != 5 {
		t.Errorf("lines %+v", lines)
	}
}

// TestWriterFlush finds a batch written once Flush returns, with no Close.
func TestWriterFlush(t *testing.T) {
	var out lockedBuffer
	// A large chunk, so only the flush (or an idle queue) writes.
	w := NewWriterConfig(&out, Config{ChunkSize: 1 << 20})
	defer w.Close()
	for i := range 3 {
		if err := w.Write([][]byte{syscallRecord(0, uint64(i)), execRecord(0, uint64(i))}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if lines := parseLines(t, out.Bytes()); len(lines) != 2*(i+1) {
			t.Fatalf("after Flush %d: %d lines, want %d", i, len(lines), 2*(i+1))
		}
	}
}

// TestWriterLeavesOutInvalid counts records that do not decode.
func TestWriterLeavesOutInvalid(t *testing.T) {
	var out lockedBuffer
	w := NewWriter(&out)
	bad := syscallRecord(0, 1)
	bad[16] = 77 // the record type
	if err := w.Write([][]byte{syscallRecord(0, 0), bad, syscallRecord(0, 2)[:30], syscallRecord(0, 3)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, out.Bytes())
	if len(lines) != 2 || lines[0].Seq != 0 || lines[1].Seq != 3 {
		t.Errorf("lines %+v, want seq 0 and 3", lines)
	}
	if s := w.Stats(); s.Records != 2 || s.Invalid != 2 {
		t.Errorf("stats %+v, want 2 records and 2 invalid", s)
	}
}

// TestWriterDoesNotAllocate: in steady state, handing a batch over and
// encoding it allocate nothing, on either side.
func TestWriterDoesNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  func(uint32, uint64) []byte
	}{{"syscalls", syscallRecord}, {"exec", execRecord}} {
		t.Run(tc.name, func(t *testing.T) {
			batch := make([][]byte, 1024)
			for i := range batch {
				batch[i] = tc.rec(0, uint64(i))
			}
			w := NewWriter(io.Discard)
			defer w.Close()
			// Warm up: every block and the encoder's buffer at full size.
			for range 2 * DefaultBlocks {
				if err := w.Write(batch); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(200, func() {
				if err := w.Write(batch); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Write of %d records allocates %.1f times per batch", len(batch), n)
			}
		})
	}
}

func ExampleWriter() {
	w := NewWriterConfig(os.Stdout, Config{OnError: func(err error) {
		// Cancel the run here: stdout is gone.
	}})
	rec := abi.SyscallRecord{Hdr: abi.Header{KtimeNs: 99, Seq: 3, Type: abi.RecordSyscall}, Pid: 10, Tid: 11, Nr: 39}
	// On each consumer's thread, from its callback:
	if err := w.Write([][]byte{bytesOf(&rec)}); err != nil {
		fmt.Println(err)
	}
	// After the last batch:
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"type":"syscalls","cpu":0,"seq":3,"ktime_ns":99,"pid":10,"tid":11,"nr":39}
}

// TestWriterAbortFreesAStalledRun stalls the output for good, as a reader
// that stops reading without exiting would: the producer blocks, and Abort
// must free it, make Close return, and count every record it did not print.
func TestWriterAbortFreesAStalledRun(t *testing.T) {
	g := &gatedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(g.release)
	w := NewWriterConfig(g, Config{BlockSize: 400, Blocks: 2})
	batch := make([][]byte, 10)
	for i := range batch {
		batch[i] = syscallRecord(0, uint64(i))
	}
	done := make(chan error, 1)
	go func() {
		for {
			if err := w.Write(batch); err != nil {
				done <- err
				return
			}
		}
	}()
	<-g.entered
	waitStalled(t, done)
	stopped := errors.New("stdout's reader stopped reading")
	w.Abort(stopped)
	withTimeout(t, 5*time.Second, "Write after Abort", func() {
		if err := <-done; !errors.Is(err, stopped) {
			t.Errorf("Write after Abort: %v, want the abort's error", err)
		}
	})
	withTimeout(t, 5*time.Second, "Close after Abort", func() {
		if err := w.Close(); !errors.Is(err, stopped) {
			t.Errorf("Close after Abort: %v", err)
		}
	})
	if err := w.Write(batch); err == nil {
		t.Error("Write after Abort and Close succeeded")
	}
	if s := w.Stats(); s.Discarded < uint64(len(batch)) {
		t.Errorf("stats %+v: the records not printed are not counted", s)
	}
}
