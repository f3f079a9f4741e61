package metrics

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/userring"
)

// userRing is a real control program and a real writer on its user ring:
// the two halves a control.Channel reads its counters from.
type userRing struct {
	ctl *loader.ControlProgram
	w   *userring.Writer
}

func (u userRing) WriterStats() userring.Stats         { return u.w.Stats() }
func (u userRing) DrainStats() (abi.DrainStats, error) { return u.ctl.Stats() }

// TestUserRingMetricsMatchTheKernel fills a one-page user ring until it
// is full, drains it, sends malformed messages and pings, and compares a
// scrape with what was done.
func TestUserRingMetricsMatchTheKernel(t *testing.T) {
	testenv.RequireUserRing(t)
	ctl, err := loader.OpenControl(loader.ControlOptions{UserRingSize: os.Getpagesize()})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	w, err := userring.Open(ctl.UserRing())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	hist := NewRoundTripHistogram()
	coll := NewUserRingCollector(userRing{ctl, w}, hist)

	data := 0
	for ; ; data++ {
		err := w.Write(control.AppendData(nil, uint64(data), 1))
		if errors.Is(err, userring.ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ctl.Doorbell(); err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{
		control.AppendData(nil, 0, 1)[:20], // short
		{9, 0, 0, 0, 0, 0, 0, 0},           // unknown type
		control.AppendPing(nil, 1, 1),
		control.AppendPing(nil, 2, 1),
		control.AppendSource(nil, abi.MsgPause, abi.RecordExec, 0), // its own maps: changes nothing that runs
	}
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ctl.Doorbell(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{3 * time.Microsecond, 40 * time.Microsecond} {
		coll.ObserveRoundTrip(d)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(coll)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	defer srv.Close()
	families := scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   uint64
	}{
		{"ringwatch_user_ring_messages_total", map[string]string{"type": "data"}, uint64(data)},
		{"ringwatch_user_ring_messages_total", map[string]string{"type": "ping"}, 2},
		{"ringwatch_user_ring_messages_total", map[string]string{"type": "pause"}, 1},
		{"ringwatch_user_ring_messages_total", map[string]string{"type": "set_pids"}, 0},
		{"ringwatch_user_ring_rejected_total", nil, 2},
		{"ringwatch_user_ring_full_total", nil, 1},
		{"ringwatch_roundtrip_latency_seconds", nil, 2},
	} {
		if got := value(t, families, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %d, want %d", c.name, c.labels, got, c.want)
		}
	}
	if problems, err := testutil.CollectAndLint(coll); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}

	var sum bytes.Buffer
	if err := coll.WriteSummary(&sum); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 ping", "1 pause", "2 rejected", "1 times full"} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary %q lacks %q", sum.String(), want)
		}
	}
}

func TestUserRingMetricsReportAClosedKernelSide(t *testing.T) {
	testenv.RequireUserRing(t)
	ctl, err := loader.OpenControl(loader.ControlOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := userring.Open(ctl.UserRing())
	if err != nil {
		ctl.Close()
		t.Fatal(err)
	}
	defer w.Close()
	coll := NewUserRingCollector(userRing{ctl, w}, NewRoundTripHistogram())
	ctl.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(coll)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "read user ring counters") {
		t.Errorf("gather with the control program closed: %v", err)
	}
}
