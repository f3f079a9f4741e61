package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// WriteTables prints one table per scenario, as `ringwatch bench` does,
// with ratios of ringwatch's figure to the peer's for the same transport
// and size.
func WriteTables(w io.Writer, results []Result) {
	// vsPeers is ringwatch's figure over each peer's in the same
	// measurement, as "0.10x cilium-ringbuf, 1.20x libbpf".
	vsPeers := func(r Result, figure func(Result) float64, unit string) string {
		if r.Consumer != Ringwatch {
			return ""
		}
		var out []string
		for _, p := range results {
			if p.Scenario == r.Scenario && p.Transport == r.Transport && p.RecordSize == r.RecordSize &&
				p.Rate == r.Rate && p.Consumer != Ringwatch && p.Consumer != Baseline && figure(p) > 0 {
				out = append(out, fmt.Sprintf("%.2fx%s %s", figure(r)/figure(p), unit, p.Consumer))
			}
		}
		return strings.Join(out, ", ")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e3) }
	last := ""
	for i, r := range results {
		if r.Scenario != last {
			if last != "" {
				fmt.Fprintln(tw)
			}
			last = r.Scenario
			switch r.Scenario {
			case Drain:
				fmt.Fprintln(tw, "DRAIN\ttransport\tsize\tconsumer\trecords\tns/record\tGB/s\tvs peers\t")
			case Saturation:
				fmt.Fprintln(tw, "SATURATION\ttransport\tsize\tconsumer\twakeup\tattempted\tdelivered\tlost\tproduced/s\tconsumer CPU s\tCPU ns/rec\tdrain ns/rec\tlive/drain\twakeups\tdelivered vs peers\t")
			case Latency:
				fmt.Fprintln(tw, "LATENCY\ttransport\tsize\trate/s\tconsumer\twakeup\tdelivered\tp50 us\tp99 us\tp99.9 us\tmax us\tCPU s/M\twakeups\tp99 vs peers\t")
			case RoundTrip:
				fmt.Fprintln(tw, "ROUNDTRIP\tpings\tp50 us\tp99 us\tp99.9 us\tmax us\t")
			case Producer:
				fmt.Fprintln(tw, "PRODUCER\tring\tsize\tattempted\tdelivered\tkept\toverwritten\tlost\tCPU ns/rec\trecords/s\tvs ringbuf\t")
			case Scale:
				fmt.Fprintln(tw, "SCALE\ttransport\tsize\tproducers\tconsumers\tattempted\tdelivered\tlost\tproduced/s\tper producer/s\tconsumer CPU s\tCPU ns/rec\t")
			}
		}
		switch r.Scenario {
		case Drain:
			ratio := vsPeers(r, func(r Result) float64 { return r.NsPerRecord }, "")
			fmt.Fprintf(tw, "\t%s\t%d\t%s\t%d\t%.1f\t%.2f\t%s\t\n", r.Transport, r.RecordSize, r.Consumer, r.Delivered, r.NsPerRecord, r.GBPerSecond, ratio)
		case Saturation:
			ratio := vsPeers(r, func(r Result) float64 { return r.DeliveredRatio }, "")
			drain, gap := "-", "-"
			if r.DrainNsPerRecord > 0 {
				drain = fmt.Sprintf("%.1f", r.DrainNsPerRecord)
				gap = fmt.Sprintf("%.1fx", r.CPUPerMillion*1e3/r.DrainNsPerRecord)
			}
			fmt.Fprintf(tw, "\t%s\t%d\t%s\t%s\t%d\t%s\t%d\t%.2fM\t%.3f\t%.1f\t%s\t%s\t%d\t%s\t\n", r.Transport, r.RecordSize, r.Consumer, r.Wakeup,
				r.Attempted, percent(r.DeliveredRatio), r.Lost, r.ProducerRate/1e6, r.ConsumerCPU, r.CPUPerMillion*1e3, drain, gap, r.Wakeups, ratio)
		case Latency:
			ratio := vsPeers(r, func(r Result) float64 { return float64(r.P99) }, "")
			transport, size := r.Transport, strconv.Itoa(r.RecordSize)
			if r.Consumer == Baseline {
				transport, size = "-", "-"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%d\t%s\t\n", transport, size, r.Rate, r.Consumer, r.Wakeup,
				r.Delivered, us(r.P50), us(r.P99), us(r.P999), us(r.Max), r.CPUPerMillion, r.Wakeups, ratio)
		case RoundTrip:
			fmt.Fprintf(tw, "\t%d\t%s\t%s\t%s\t%s\t\n", r.Delivered, us(r.P50), us(r.P99), us(r.P999), us(r.Max))
		case Scale:
			fmt.Fprintf(tw, "\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%.2fM\t%.2fM\t%.3f\t%.1f\t\n", r.Transport, r.RecordSize,
				r.Producers, r.Consumers, r.Attempted, percent(r.DeliveredRatio), r.Lost, r.ProducerRate/1e6, r.PerProducer/1e6,
				r.ConsumerCPU, r.CPUPerMillion*1e3)
		case Producer:
			writeProducerRow(tw, r, results)
			if i+1 == len(results) || results[i+1].Scenario != Producer {
				fmt.Fprintln(tw, ProducerMethod)
			}
		}
	}
}

// writeProducerRow prints one row of the producer table, with its CPU ns
// per record over the normal ring's at the same size.
func writeProducerRow(w io.Writer, r Result, results []Result) {
	if r.Unsupported != "" {
		fmt.Fprintf(w, "\t%s\t%d\t-\t-\t-\t-\t-\t-\t-\t%s\t\n", r.Transport, r.RecordSize, r.Unsupported)
		return
	}
	ratio := ""
	for _, p := range results {
		if p.Scenario == Producer && p.Transport == string(abi.Ringbuf) && p.RecordSize == r.RecordSize && p.NsPerRecord > 0 {
			ratio = fmt.Sprintf("%.2fx", r.NsPerRecord/p.NsPerRecord)
		}
	}
	fmt.Fprintf(w, "\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.2fM\t%s\t\n", r.Transport, r.RecordSize, r.Attempted, r.Delivered,
		r.Kept, r.Overwritten, r.Lost, r.NsPerRecord, r.ProducerRate/1e6, ratio)
}

// percent prints a delivered fraction with as many decimals as it takes to
// tell a loss: 99.99% and 100% must not round to the same figure, so a
// fraction below 1 never prints as 100.00%.
func percent(f float64) string {
	switch {
	case f >= 1:
		return "100%"
	case f >= 0.9999:
		return fmt.Sprintf("%.4f%%", math.Floor(f*1e6)/1e4)
	}
	return fmt.Sprintf("%.2f%%", math.Floor(f*1e4)/1e2)
}

// WriteJSON prints the results as one indented JSON array, for scripts
// that compare runs.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}
