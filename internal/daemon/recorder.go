package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/metrics"
	"github.com/ringwatch/ringwatch/internal/output"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// DefaultRecorderDumpDir is where SIGUSR1 writes the recorder's window.
const DefaultRecorderDumpDir = "/run/ringwatch"

// checkRecorder refuses a recorder on a kernel without overwrite-mode ring
// buffers, before anything is loaded: the probe is a feature test.
func checkRecorder(size int) error {
	if size == 0 {
		return nil
	}
	err := consumer.RecorderSupported()
	if errors.Is(err, errors.ErrUnsupported) {
		return abi.RefuseOption(abi.ErrInvalidOption, "recorder", abi.FormatSize(size), "{recorder} %s: %v", abi.FormatSize(size), err)
	}
	return err
}

// recorderSide is the flight recorder of `ringwatch run`: it takes the
// newest window out of the overwrite-mode ring the producers copy every
// record into, for ctl dump and for SIGUSR1. A nil *recorderSide is a run
// without one.
type recorderSide struct {
	producers *loader.Producers
	dir       string
	capacity  uint64

	mu   sync.Mutex // one snapshot at a time: it reuses snap
	rec  *consumer.Recorder
	snap consumer.Snapshot
	line []byte

	signals chan os.Signal
	done    sync.WaitGroup
}

// startRecorder opens the producers' recorder, if they keep one, and
// dumps it to a file in dir on each SIGUSR1, saying so on stderr.
func startRecorder(p *loader.Producers, size int, dir string, stderr io.Writer) (*recorderSide, error) {
	m := p.Recorder()
	if m == nil {
		return nil, nil
	}
	rec, err := consumer.OpenRecorder(m)
	if err != nil {
		return nil, fmt.Errorf("open the recorder: %w", err)
	}
	r := &recorderSide{producers: p, dir: dir, capacity: uint64(size), rec: rec, signals: make(chan os.Signal, 1)}
	signal.Notify(r.signals, syscall.SIGUSR1)
	r.done.Go(func() {
		for range r.signals {
			name, books, err := r.dumpToFile()
			if err != nil {
				fmt.Fprintf(stderr, "ringwatch: recorder dump: %v\n", err)
				continue
			}
			fmt.Fprintf(stderr, "ringwatch: recorder dump in %s: %v\n", name, books)
		}
	})
	return r, nil
}

// dumpToFile writes the window to a new file in r.dir.
func (r *recorderSide) dumpToFile() (string, control.DumpBooks, error) {
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return "", control.DumpBooks{}, fmt.Errorf("create %s: %w", r.dir, err)
	}
	name := filepath.Join(r.dir, fmt.Sprintf("ringwatch-recorder-%s.jsonl", time.Now().UTC().Format("20060102T150405.000000000Z")))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", control.DumpBooks{}, fmt.Errorf("create the dump: %w", err)
	}
	books, err := r.Dump(f, nil)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", name, cerr)
	}
	return name, books, err
}

// Dump implements control.Dumper: it takes the newest window, then writes
// its records to w as JSON lines, as --output json writes them.
func (r *recorderSide) Dump(w io.Writer, begin func(control.DumpBooks) error) (control.DumpBooks, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.rec.Snapshot(&r.snap); err != nil {
		return control.DumpBooks{}, fmt.Errorf("take the recorder's window: %w", err)
	}
	kernel, err := r.producers.RecorderBooks()
	if err != nil {
		return control.DumpBooks{}, err
	}
	b := control.DumpBooks{Attempted: kernel.Written + kernel.Failed, Lost: kernel.Failed,
		Delivered: uint64(len(r.snap.Records)), Pending: r.snap.Pending,
		Bytes: r.snap.End - r.snap.Start, Capacity: r.capacity}
	if in := b.Delivered + b.Lost; b.Attempted > in {
		b.Overwritten = b.Attempted - in
	}
	if begin != nil {
		if err := begin(b); err != nil {
			return b, err
		}
	}
	// Encoded a chunk at a time: a window's JSON is some three times its
	// records, too much to hold whole for a large recorder.
	r.line = r.line[:0]
	for i, rec := range r.snap.Records {
		kept := len(r.line)
		var err error
		if r.line, err = output.AppendJSON(r.line, rec); err != nil {
			b.Invalid++
			r.line = r.line[:kept]
		} else {
			r.line = append(r.line, '\n')
		}
		if len(r.line) >= 1<<20 || i == len(r.snap.Records)-1 {
			if _, err := w.Write(r.line); err != nil {
				return b, fmt.Errorf("write the window: %w", err)
			}
			r.line = r.line[:0]
		}
	}
	return b, nil
}

// collectors are the recorder's metrics, if any.
func (r *recorderSide) collectors() []prometheus.Collector {
	if r == nil {
		return nil
	}
	return []prometheus.Collector{metrics.NewRecorderCollector(r.counts)}
}

// counts are the recorder's books at a scrape. Overwritten is attempted -
// lost - held: every record the producers counted as copied is either in
// the window or overwritten. The counters are read before the walk, so no
// record is counted that the walk could not have seen: a producer counts a
// copy only once bpf_ringbuf_output has committed it, so a record held, or
// busy, that the counters miss only makes the held count larger, and the
// result smaller. It is never more than the recorder overwrote, and exact
// while the producers are quiet; busy records are not subtracted, as none
// of them is in the counters yet. Where the walk fails (the producers lap
// it), the scrape still serves the counters, and the overwritten count
// stays where the collector had it.
func (r *recorderSide) counts() (metrics.RecorderCounts, error) {
	k, err := r.producers.RecorderBooks()
	if err != nil {
		return metrics.RecorderCounts{}, err
	}
	n := metrics.RecorderCounts{Attempted: k.Written + k.Failed, Lost: k.Failed}
	r.mu.Lock()
	held, _, err := r.rec.Held()
	r.mu.Unlock()
	if err == nil && uint64(held) < k.Written {
		n.Overwritten = k.Written - uint64(held)
	}
	return n, nil
}

// announce says how to take the window out.
func (r *recorderSide) announce(w io.Writer, names func(string) string) {
	if r == nil {
		return
	}
	fmt.Fprintln(w, abi.Words(names, "ringwatch: recorder of %s: 'ringwatch ctl dump' or SIGUSR1 (to a file in %s) takes its window",
		abi.FormatSize(int(r.capacity)), r.dir))
}

// Close stops the dumps on signal and unmaps the ring.
func (r *recorderSide) Close() error {
	if r == nil {
		return nil
	}
	signal.Stop(r.signals)
	close(r.signals)
	r.done.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.Close()
}
