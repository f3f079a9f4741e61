package deploy

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

const (
	rulesFile     = "prometheus/ringwatch-rules.yml"
	rulesTestFile = "prometheus/ringwatch-rules.test.yml"
	readmeURL     = "https://github.com/ringwatch/ringwatch/blob/main/docs/metrics.md#"
)

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Record      string            `json:"record"`
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// promtool returns the path of promtool, which Debian's prometheus package
// ships and .ci/run installs.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		testenv.Unavailable(t, "needs promtool: .ci/run shows how to install it from Debian's prometheus package")
	}
	return p
}

// TestRules has promtool check the rules and run their unit tests, in
// which every alert fires on the series it is for and stays silent on its
// neighbours.
func TestRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(pt, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestRulesTestEveryAlert: each alert has a unit test that expects it to
// fire, so none is left untested.
func TestRulesTestEveryAlert(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, rulesTestFile)), &tests); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts(t) {
		if !fires[a] {
			t.Errorf("no test in %s expects %s to fire", rulesTestFile, a)
		}
	}
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.UnmarshalStrict([]byte(readFile(t, rulesFile)), &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

func alerts(t *testing.T) []string {
	var names []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}
	return names
}

// TestRulesRunbooks: every alert has a severity, a summary, and a
// runbook_url leading to a section of docs/metrics.md of its own name that says what
// to do.
func TestRulesRunbooks(t *testing.T) {
	sections := readmeSections(t)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a summary and a description", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], readmeURL)
			if !ok || anchor != githubAnchor(r.Alert) {
				t.Errorf("%s: runbook_url %q, want %s%s", r.Alert, r.Annotations["runbook_url"], readmeURL, githubAnchor(r.Alert))
				continue
			}
			if text, ok := sections[anchor]; !ok || len(strings.Fields(text)) < 10 {
				t.Errorf("%s: %s has no runbook under a heading %q", r.Alert, metricsDoc, r.Alert)
			}
		}
	}
}

// TestRulesNameRealMetrics: each metric the rules read is one a live
// `ringwatch run` exports, or a recording rule of the file, or Prometheus's
// own up.
func TestRulesNameRealMetrics(t *testing.T) {
	rf := loadRules(t)
	recorded := map[string]bool{"up": true}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	var named []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names, err := metricNames(r.Expr)
			if err != nil {
				t.Errorf("%s%s: %v", r.Record, r.Alert, err)
			}
			for _, n := range names {
				if !recorded[n] {
					named = append(named, n)
				}
			}
		}
	}
	slices.Sort(named)
	checkMetricsExist(t, rulesFile, slices.Compact(named), sampleNames(t, liveScrape(t)), readmeMetrics(t))
}

// TestPromtoolCheckMetrics lints a live scrape with promtool, as a
// Prometheus maintainer would.
func TestPromtoolCheckMetrics(t *testing.T) {
	pt := promtool(t)
	body := liveScrape(t)
	cmd := exec.Command(pt, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
