package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/metrics"
	"github.com/ringwatch/ringwatch/internal/progstats"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// hostWatch is what `run` shows of the whole host, beside its own rings:
// the census of every ring (--host-rings) with its sampling loop, and the
// kernel's run statistics of every program (--prog-stats), held on only
// while the run lasts.
type hostWatch struct {
	collectors []prometheus.Collector
	census     *hostrings.Census
	stats      io.Closer
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	notes      []string // what was left out and why, for announce
}

// startHostWatch starts what the flags ask for. Whatever the kernel refuses
// (without CAP_SYS_ADMIN, both) it leaves out, and announce says so once:
// the run carries on without it. A census walk that fails later is said
// once on stderr.
// The advised capacity of each host ring is for a consumer pause of pause.
func startHostWatch(hostRings bool, pause time.Duration, progStats bool, stderr io.Writer, names func(string) string) *hostWatch {
	h := &hostWatch{cancel: func() {}}
	if hostRings {
		census, err := hostrings.Open(hostrings.Options{})
		if err != nil {
			h.notes = append(h.notes, abi.Words(names, "ringwatch: no host ring metrics: %v; carrying on without them ({host rings off} turns them off)", err))
		} else {
			h.census = census
			c := metrics.NewHostRingCollector(census, metrics.HostRingOptions{Pause: pause})
			h.collectors = append(h.collectors, c)
			var ctx context.Context
			ctx, h.cancel = context.WithCancel(context.Background())
			var once sync.Once
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				census.Run(ctx, c.Observe, func(err error) {
					once.Do(func() { fmt.Fprintf(stderr, "ringwatch: host ring census: %v (said once)\n", err) })
				})
			}()
		}
	}
	if progStats {
		stats, err := progstats.Enable()
		if err != nil {
			h.notes = append(h.notes, fmt.Sprintf("ringwatch: no BPF program metrics: %v; carrying on without them", err))
		} else {
			h.stats = stats
			h.collectors = append(h.collectors, metrics.NewProgramCollector())
		}
	}
	return h
}

// announce says what startHostWatch left out, after the run's banner.
func (h *hostWatch) announce(w io.Writer) {
	for _, note := range h.notes {
		fmt.Fprintln(w, note)
	}
}

// Close stops the census and turns the program statistics off again.
func (h *hostWatch) Close() error {
	h.cancel()
	h.wg.Wait()
	var errs []error
	if h.census != nil {
		errs = append(errs, h.census.Close())
	}
	if h.stats != nil {
		errs = append(errs, h.stats.Close())
	}
	return errors.Join(errs...)
}
