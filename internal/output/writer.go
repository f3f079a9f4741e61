package output

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [Config].
const (
	// DefaultBlockSize holds a whole batch of syscall records (1024 of 40
	// bytes); a batch of exec records takes several blocks.
	DefaultBlockSize = 64 << 10
	// DefaultBlocks bounds what waits for the encoder to 4 MiB with
	// DefaultBlockSize: as much again as the default ring.
	DefaultBlocks = 64
	// DefaultChunkSize is how much JSON the encoder gathers before one
	// write, while it has more to encode.
	DefaultChunkSize = 128 << 10
)

// ErrClosed is returned by [Writer.Write] after [Writer.Close].
var ErrClosed = os.ErrClosed

// Config tunes a [Writer]; zero fields take the defaults.
type Config struct {
	// BlockSize is how many bytes of records a block holds. A batch
	// larger than a block takes several; a record larger than a block
	// takes one of its own.
	BlockSize int
	// Blocks is how many blocks there are, and so how much may wait for
	// the encoder: at most Blocks*BlockSize bytes of records. When every
	// block waits, [Writer.Write] blocks.
	Blocks int
	// ChunkSize is how many bytes of JSON the encoder gathers before it
	// writes, while more blocks wait; when none waits it writes at once.
	ChunkSize int
	// OnError, if not nil, is called once, on the encoder's goroutine,
	// with the first error of the underlying writer, such as EPIPE when
	// stdout's reader went away. It must not call the Writer's methods:
	// cancelling the run's context is what it is for.
	OnError func(error)
}

// Writer prints records as JSON lines, one per record, off the caller's
// thread. [Writer.Write] copies a batch's records into blocks from a fixed
// pool and queues them; one encoder goroutine turns queued blocks into JSON
// with [AppendJSON] and writes it in large chunks. When every block is
// queued, Write waits for the encoder: records are never dropped to keep
// up, so a consumer that falls behind leaves its loss to the kernel, which
// counts it. Records that do not decode are left out: the accounting counts
// them as invalid.
//
// Write and Flush are safe for concurrent use. The records of one caller
// come out in the order of its calls; records of concurrent callers
// interleave by batch.
//
// After a write error, Write no longer copies or waits: it returns the
// error at once, and what is queued is dropped, since the run is ending.
type Writer struct {
	w         io.Writer
	blockSize int
	chunkSize int
	onError   func(error)

	// mu orders Close after every Write and Flush in progress: they hold
	// it for reading while they queue.
	mu     sync.RWMutex
	closed bool

	free  chan *block // blocks for Write to fill; Config.Blocks of them
	queue chan *block // blocks for the encoder, in the order queued
	done  chan struct{}
	// stop is closed by the first failure, so that no Write waits for a
	// block that a stuck encoder will never free.
	stop chan struct{}

	failed  atomic.Bool
	err     error // set once, before failed
	errOnce sync.Once

	closeOnce sync.Once

	// The encoder's own: out is JSON not yet written.
	out    []byte
	encode bool // false in tests of the copy alone

	stats struct {
		accepted, encoded, records, invalid, discarded, bytes atomic.Uint64
		stalls, stallNanos                                    atomic.Uint64
	}
	// pending counts the records encoded into out, not yet written.
	pending uint64
}

// block is a run of records copied from a batch, back to back in data; the
// end of record i is ends[i]. A block with flushed set carries no records
// but asks the encoder to write what it holds and then close flushed.
type block struct {
	data    []byte
	ends    []int
	flushed chan struct{}
}

// NewWriter writes to w with the default [Config].
func NewWriter(w io.Writer) *Writer { return NewWriterConfig(w, Config{}) }

// NewWriterConfig writes to w and starts the encoder, which runs until
// [Writer.Close].
func NewWriterConfig(w io.Writer, cfg Config) *Writer { return newWriter(w, cfg, true) }

func newWriter(w io.Writer, cfg Config, encode bool) *Writer {
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.Blocks <= 0 {
		cfg.Blocks = DefaultBlocks
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	e := &Writer{
		w:         w,
		blockSize: cfg.BlockSize,
		chunkSize: cfg.ChunkSize,
		onError:   cfg.OnError,
		free:      make(chan *block, cfg.Blocks),
		// Every block fits, so queueing one never waits; only a Flush
		// marker may.
		queue:  make(chan *block, cfg.Blocks),
		done:   make(chan struct{}),
		stop:   make(chan struct{}),
		out:    make([]byte, 0, cfg.ChunkSize+4096),
		encode: encode,
	}
	for range cfg.Blocks {
		e.free <- &block{data: make([]byte, 0, cfg.BlockSize)}
	}
	go e.run()
	return e
}

// Write copies records and queues them for the encoder; their memory may
// be reused once it returns. It is safe for concurrent use, and allocates
// nothing. It waits while every block is queued. Once the underlying
// writer failed, it returns that writer's first error at once, without
// copying; after Close it returns [ErrClosed].
func (e *Writer) Write(records [][]byte) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	e.stats.accepted.Add(uint64(len(records)))
	if e.failed.Load() {
		e.stats.discarded.Add(uint64(len(records)))
		return e.err
	}
	for len(records) > 0 {
		b := e.get()
		if b == nil || e.failed.Load() {
			if b != nil {
				e.free <- b // never waits: the block came from there
			}
			e.stats.discarded.Add(uint64(len(records)))
			return e.err
		}
		data, ends := b.data, b.ends
		for _, rec := range records {
			if len(ends) > 0 && len(data)+len(rec) > cap(data) {
				break // full; an outsized record alone grows a block
			}
			data = append(data, rec...)
			ends = append(ends, len(data))
		}
		records = records[len(ends):]
		b.data, b.ends = data, ends
		e.queue <- b
	}
	return nil
}

// get takes a free block, waiting for the encoder if there is none: this
// wait is the backpressure that stalls a consumer rather than drop. It
// returns nil once the Writer has failed or been aborted.
func (e *Writer) get() *block {
	select {
	case b := <-e.free:
		return b
	default:
	}
	start := time.Now()
	defer func() {
		e.stats.stalls.Add(1)
		e.stats.stallNanos.Add(uint64(time.Since(start)))
	}()
	select {
	case b := <-e.free:
		return b
	case <-e.stop:
		return nil
	}
}

// Abort gives up on what is not yet written, with err as the Writer's
// error unless it already failed: Writes waiting for room return at once,
// and later ones drop their records, counted in Stats.Discarded. It is for
// a run that must end while the reader of its output has stopped reading;
// Close then does not wait for an encoder stuck in that reader's write.
func (e *Writer) Abort(err error) { e.fail(err) }

// Flush waits until everything queued before it is written, and returns
// the first error of the underlying writer.
func (e *Writer) Flush() error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return e.Err()
	}
	m := &block{flushed: make(chan struct{})}
	e.queue <- m
	e.mu.RUnlock()
	<-m.flushed
	return e.Err()
}

// Close writes everything queued, stops the encoder and returns the first
// error of the underlying writer. It does not close that writer. Calls
// after the first return the same.
func (e *Writer) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		close(e.queue)
		e.mu.Unlock()
		select {
		case <-e.done:
		case <-e.stop:
			// Failed: a write that returned has ended the encoder's work
			// (it drops the rest); one stuck in a reader that stopped
			// reading never returns, and is left behind.
		}
	})
	return e.Err()
}

// Err is the underlying writer's first error, or nil.
func (e *Writer) Err() error {
	if e.failed.Load() {
		return e.err
	}
	return nil
}

// Stats are a Writer's counts so far.
type Stats struct {
	// Accepted records were handed to Write, before Close.
	Accepted uint64
	// Encoded records were turned into JSON lines, written or not yet.
	Encoded uint64
	// Records were written as JSON lines. Accepted - Records - Invalid
	// were not: dropped after a failure or an Abort, or still queued.
	Records uint64
	// Invalid records did not decode and were left out.
	Invalid uint64
	// Discarded records were queued but dropped after a write error.
	Discarded uint64
	// Bytes of JSON were written.
	Bytes uint64
	// Stalls counts the times a Write waited for the encoder, for
	// StallTime in all.
	Stalls    uint64
	StallTime time.Duration
}

// Stats are the Writer's counts so far; safe to call at any time.
func (e *Writer) Stats() Stats {
	return Stats{
		Accepted:  e.stats.accepted.Load(),
		Encoded:   e.stats.encoded.Load(),
		Records:   e.stats.records.Load(),
		Invalid:   e.stats.invalid.Load(),
		Discarded: e.stats.discarded.Load(),
		Bytes:     e.stats.bytes.Load(),
		Stalls:    e.stats.stalls.Load(),
		StallTime: time.Duration(e.stats.stallNanos.Load()),
	}
}

// run is the encoder: it encodes blocks in queue order, gathers the JSON
// into chunks, and writes a chunk when it is full or when nothing else is
// queued, so that a quiet run still prints at once.
func (e *Writer) run() {
	defer close(e.done)
	for b := range e.queue {
		if b.flushed != nil {
			e.writeOut()
			close(b.flushed)
			continue
		}
		e.encodeBlock(b)
		if len(b.ends) > 0 && cap(b.data) > e.blockSize {
			// An outsized record grew it: keep the pool's memory bounded.
			b.data = make([]byte, 0, e.blockSize)
		}
		b.data, b.ends = b.data[:0], b.ends[:0]
		e.free <- b
		if len(e.out) >= e.chunkSize || len(e.queue) == 0 {
			e.writeOut()
		}
	}
	e.writeOut()
}

// encodeBlock appends b's records to e.out as JSON lines.
func (e *Writer) encodeBlock(b *block) {
	if e.failed.Load() {
		e.stats.discarded.Add(uint64(len(b.ends)))
		return
	}
	if !e.encode {
		return
	}
	out := e.out
	var invalid uint64
	start := 0
	for _, end := range b.ends {
		line, err := AppendJSON(out, b.data[start:end])
		start = end
		if err != nil {
			invalid++
			continue
		}
		out = append(line, '\n')
	}
	e.out = out
	e.pending += uint64(len(b.ends)) - invalid
	e.stats.encoded.Add(uint64(len(b.ends)) - invalid)
	e.stats.invalid.Add(invalid)
}

// writeOut writes e.out; on error it records the error, which turns later
// blocks into discards.
func (e *Writer) writeOut() {
	pending := e.pending
	e.pending = 0
	if len(e.out) == 0 || e.failed.Load() {
		e.out = e.out[:0]
		e.stats.discarded.Add(pending)
		return
	}
	n, err := e.w.Write(e.out)
	e.stats.bytes.Add(uint64(n))
	if err == nil && n < len(e.out) {
		err = io.ErrShortWrite
	}
	e.out = e.out[:0]
	if err != nil {
		e.stats.discarded.Add(pending)
		e.fail(err)
		return
	}
	e.stats.records.Add(pending)
}

func (e *Writer) fail(err error) {
	e.errOnce.Do(func() {
		e.err = err
		e.failed.Store(true)
		close(e.stop)
		if e.onError != nil {
			e.onError(err)
		}
	})
}
