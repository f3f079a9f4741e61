package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardFile = "grafana/ringwatch.json"

// dashboard is the part of Grafana's dashboard JSON the test reads.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader([]byte(readFile(t, dashboardFile))))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVariables stand in for what Grafana substitutes before a query
// reaches Prometheus: a job, every instance, an interval.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$job", "ringwatch",
	"$instance", ".*",
)

// metricNames parses expr as PromQL, after substituting Grafana's
// variables, and returns the metric names its selectors name.
func metricNames(expr string) ([]string, error) {
	node, err := parser.ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	var missing error
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				missing = fmt.Errorf("selector %s names no metric", vs)
			}
			names = append(names, name)
		}
		return nil
	})
	return names, missing
}

// TestDashboard loads the dashboard as Grafana would import it and parses
// every query; each metric a query names must be one a live `ringwatch
// run` exports (or, for one that needs another feature, in docs/metrics.md's
// table), so no panel is empty for a name that does not exist.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title, and schema 36 or later", d.UID, d.Title, d.SchemaVersion)
	}

	vars := map[string]string{}
	var exprs []string
	var where []string
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s query: %v", v.Name, err)
		}
		// label_values(SELECTOR, label) is Grafana's; its selector is PromQL.
		m := regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`).FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		exprs, where = append(exprs, m[1]), append(where, "variable "+v.Name)
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not query the chosen data source: %+v", v.Name, v.Datasource)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query"} {
		if vars[name] != typ {
			t.Errorf("want a %s variable %q; variables: %v", typ, name, vars)
		}
	}

	ids := map[int]string{}
	var walk func([]panel)
	walk = func(panels []panel) {
		for _, p := range panels {
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				t.Errorf("panel %q has id %d, as %q does", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q is placed at %+v", p.Title, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not query the chosen data source: %+v", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				exprs, where = append(exprs, tg.Expr), append(where, fmt.Sprintf("panel %q %s", p.Title, tg.RefID))
				// A panel that ignores the variables shows every instance.
				if !strings.Contains(tg.Expr, `job=~"$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
					t.Errorf("panel %q %s does not filter on $job and $instance: %s", p.Title, tg.RefID, tg.Expr)
				}
			}
		}
	}
	walk(d.Panels)

	var named []string
	for i, e := range exprs {
		names, err := metricNames(e)
		if err != nil {
			t.Errorf("%s: %v\n%s", where[i], err, e)
			continue
		}
		named = append(named, names...)
	}
	slices.Sort(named)
	named = slices.Compact(named)
	// Everything the issue asks the dashboard to show is there.
	for _, want := range []string{"ringwatch_ring_records_total", "ringwatch_ring_bytes_total", "ringwatch_ring_lost_records_total",
		"ringwatch_ring_pending_bytes", "ringwatch_ring_capacity_bytes", "ringwatch_delivery_latency_seconds_bucket",
		"ringwatch_consumer_wakeups_total", "ringwatch_consumer_batches_total", "ringwatch_consumer_busy_seconds_total",
		"ringwatch_source_events_total", "ringwatch_source_lost_records_total", "ringwatch_source_skipped_events_total",
		"ringwatch_source_missed_events_total", "ringwatch_user_ring_messages_total", "ringwatch_roundtrip_latency_seconds_bucket",
		"ringwatch_host_ring_pending_bytes", "ringwatch_host_ring_capacity_bytes", "ringwatch_host_ring_fill_ratio_bucket",
		"ringwatch_host_ring_produced_bytes_total", "ringwatch_host_ring_consumed_bytes_total", "ringwatch_host_ring_stalled",
		"ringwatch_host_ring_info", "ringwatch_bpf_program_runs_total", "ringwatch_bpf_program_run_seconds_total",
		"ringwatch_host_ring_peak_produced_bytes_per_second", "ringwatch_host_ring_advised_capacity_bytes"} {
		if !slices.Contains(named, want) {
			t.Errorf("no panel shows %s", want)
		}
	}
	checkMetricsExist(t, dashboardFile, named, sampleNames(t, liveScrape(t)), readmeMetrics(t))
}

// TestDashboardQueriesAreChecked makes sure the parse in TestDashboard can
// fail: a query with a typo, and one naming no metric, are refused.
func TestDashboardQueriesAreChecked(t *testing.T) {
	for _, bad := range []string{`rate(ringwatch_ring_records_total{job=~"$job"}[$__rate_interval]`, `{job=~"$job"}`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	names, err := metricNames(`histogram_quantile(0.99, sum by (le) (rate(ringwatch_delivery_latency_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))
		/ on() group_left {__name__="ringwatch_ring_capacity_bytes"}`)
	if err != nil || !slices.Equal(names, []string{"ringwatch_delivery_latency_seconds_bucket", "ringwatch_ring_capacity_bytes"}) {
		t.Errorf("names %v, %v", names, err)
	}
}
