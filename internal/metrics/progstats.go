package metrics

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringwatch/ringwatch/internal/progstats"
)

var (
	progLabels = []string{"prog_id", "prog_name", "prog_type"}

	progRunsDesc = prometheus.NewDesc("ringwatch_bpf_program_runs_total",
		"Times the BPF program ran while the kernel's run statistics were on.", progLabels, nil)
	progRunTimeDesc = prometheus.NewDesc("ringwatch_bpf_program_run_seconds_total",
		"Time the BPF program spent running while the kernel's run statistics were on.", progLabels, nil)
	progInfoDesc = prometheus.NewDesc("ringwatch_bpf_program_info",
		"Always 1: a BPF program on the host, with the IDs of the maps it uses.", append(progLabels, "map_ids"), nil)
)

// ProgramCollector exposes every BPF program on the host with the kernel's
// run statistics. It lists the programs once per scrape; the caller keeps
// the statistics on (progstats.Enable) for as long as it is registered.
type ProgramCollector struct {
	list func() ([]progstats.Program, error)
}

var _ prometheus.Collector = (*ProgramCollector)(nil)

// NewProgramCollector lists programs with progstats.List.
func NewProgramCollector() *ProgramCollector { return &ProgramCollector{list: progstats.List} }

// Describe sends the descriptors of every metric Collect may send.
func (c *ProgramCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- progRunsDesc
	ch <- progRunTimeDesc
	ch <- progInfoDesc
}

// Collect lists the programs once and sends their counts.
func (c *ProgramCollector) Collect(ch chan<- prometheus.Metric) {
	progs, err := c.list()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(progRunsDesc, err)
		return
	}
	for _, p := range progs {
		labels := []string{strconv.FormatUint(uint64(p.ID), 10), p.Name, p.Type.String()}
		ch <- prometheus.MustNewConstMetric(progRunsDesc, prometheus.CounterValue, float64(p.RunCount), labels...)
		ch <- prometheus.MustNewConstMetric(progRunTimeDesc, prometheus.CounterValue, p.RunTime.Seconds(), labels...)
		maps := make([]string, len(p.Maps))
		for i, id := range p.Maps {
			maps[i] = strconv.FormatUint(uint64(id), 10)
		}
		ch <- prometheus.MustNewConstMetric(progInfoDesc, prometheus.GaugeValue, 1, append(labels, strings.Join(maps, ","))...)
	}
}
