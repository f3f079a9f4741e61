package deploy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

const (
	// The repository's root, where ringwatch's Makefile and README are.
	repoRoot = ".."
	// The version the tests build ringwatch and its image as.
	imageVersion = "v0.0.0-test"
)

var (
	// tmpDir holds what the tests build: one ringwatch binary, the image.
	tmpDir string

	buildOnce    sync.Once
	binary       string
	imageArchive string
	buildErr     error

	scrapeOnce sync.Once
	scrape     string
	scrapeErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ringwatch-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// nobody-readable, for the capability runs.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ringwatchBinary runs `make image` once, for every test that needs
// ringwatch or its image: it builds ringwatch from this checkout,
// statically, and writes the image archive; it returns the binary.
func ringwatchBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binary = filepath.Join(tmpDir, "ringwatch-static")
		imageArchive = filepath.Join(tmpDir, "ringwatch-image.tar")
		cmd := exec.Command("make", "-C", repoRoot, "image", "VERSION="+imageVersion,
			"IMAGE="+imageArchive, "STATIC_BIN="+binary)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make image: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// liveScrape runs `ringwatch run` with both sources, its control socket,
// the host ring census and program statistics, makes a few exec events, and returns one scrape of its metrics: what a
// Prometheus scraping it would see. Every test that needs it shares it.
func liveScrape(t *testing.T) string {
	t.Helper()
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	bin := ringwatchBinary(t)
	scrapeOnce.Do(func() { scrape, scrapeErr = runAndScrape(bin) })
	if scrapeErr != nil {
		t.Fatal(scrapeErr)
	}
	return scrape
}

func runAndScrape(bin string) (string, error) {
	// --prog-stats turns the kernel's BPF run statistics on for the few
	// seconds this run lasts, so that the program metrics are scraped too.
	cmd := exec.Command(bin, "run", "--source", "exec,syscalls", "--web.listen-address", "127.0.0.1:0",
		"--ctl.socket", filepath.Join(tmpDir, "ctl.sock"), "--prog-stats", "--duration", "60s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	banner, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read ringwatch's banner: %w", err)
	}
	url := regexp.MustCompile(`http://\S+/metrics`).FindString(banner)
	if url == "" {
		return "", fmt.Errorf("banner names no metrics URL: %q", banner)
	}
	for range 5 {
		if err := exec.Command("/bin/true").Run(); err != nil {
			return "", err
		}
	}
	exec := regexp.MustCompile(`(?m)^ringwatch_source_events_total\{source="exec"\} [1-9]`)
	for deadline := time.Now().Add(10 * time.Second); ; {
		body, err := get(url)
		if err != nil {
			return "", err
		}
		if exec.MatchString(body) {
			return body, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no exec event reached the metrics in 10s:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// sampleNames are the names of the samples in a scrape in the text format:
// a histogram's _bucket, _sum and _count, not its family name.
func sampleNames(t *testing.T, body string) map[string]bool {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(body)); err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	names := map[string]bool{}
	for line := range strings.Lines(body) {
		if line == "\n" || strings.HasPrefix(line, "#") {
			continue
		}
		names[line[:strings.IndexAny(line, "{ ")]] = true
	}
	return names
}

// readmeMetrics are the metric names in the "Metrics" table of
// docs/metrics.md (README's metrics reference), with
// _bucket, _sum and _count added for its histograms.
// metricsDoc is the page of every metric and the alerts' runbooks, relative
// to the repository's root.
const metricsDoc = "docs/metrics.md"

func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	readme := readFile(t, filepath.Join(repoRoot, metricsDoc))
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(ringwatch_[a-z_]+)` \\| (\\w+) \\|").FindAllStringSubmatch(readme, -1) {
		names[m[1]] = true
		if m[2] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+s] = true
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("%s's metric table has %d names: has its format changed?", metricsDoc, len(names))
	}
	return names
}

// checkMetricsExist fails t for each name neither in the live scrape nor,
// for metrics that need more than `ringwatch run` on this machine shows, in
// docs/metrics.md's table.
func checkMetricsExist(t *testing.T, where string, names []string, scraped, readme map[string]bool) {
	t.Helper()
	for _, n := range names {
		switch {
		case scraped[n]:
		case readme[n]:
			t.Logf("%s: %s is not in the scrape of ringwatch run, but is in %s's table", where, n, metricsDoc)
		default:
			t.Errorf("%s names %s, which ringwatch run does not export and %s does not list", where, n, metricsDoc)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// readmeSections maps each heading's anchor in docs/metrics.md, where the
// alerts' runbooks are, to the text under it, up
// to the next heading.
func readmeSections(t *testing.T) map[string]string {
	t.Helper()
	sections := map[string]string{}
	var anchor string
	inCode := false
	for line := range strings.Lines(readFile(t, filepath.Join(repoRoot, metricsDoc))) {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(line, "#") {
			anchor = githubAnchor(strings.TrimSpace(strings.TrimLeft(line, "#")))
			sections[anchor] = ""
			continue
		}
		sections[anchor] += line
	}
	return sections
}
