package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/ringwatch/ringwatch/internal/abi"
	"go.yaml.in/yaml/v2"
)

// MetricsReference is the table of every metric in docs/metrics.md, linked from the
// landing page.
const MetricsReference = "https://github.com/ringwatch/ringwatch/blob/main/docs/metrics.md#metrics"

// Web is where and how the metrics are served: the Prometheus
// exporter-toolkit's settings, which its --web.* flags give every exporter.
type Web struct {
	ListenAddresses []string // host:port each
	SystemdSocket   bool     // serve on the sockets systemd passes instead
	ConfigFile      string   // TLS and basic authentication; empty serves plain HTTP to anyone
	TelemetryPath   string   // the metrics' path; / is the landing page's
}

// toolkit is the settings as the exporter-toolkit takes them.
func (w *Web) toolkit() *web.FlagConfig {
	return &web.FlagConfig{
		WebListenAddresses: &w.ListenAddresses,
		WebSystemdSocket:   &w.SystemdSocket,
		WebConfigFile:      &w.ConfigFile,
	}
}

// metricsServer is run's HTTP side: listeners opened before anything is
// loaded, so that a taken port or a bad web configuration fails fast, and
// served by the exporter-toolkit, which adds TLS and basic authentication
// from --web.config.file. It opens the listeners itself and hands them to
// web.Serve, rather than let web.ListenAndServe open them, so that the
// port is taken before the producers load and the banner can name the
// address bound (port 0 included).
type metricsServer struct {
	web       Web
	version   string
	listeners []net.Listener
	scheme    string // http or https
	servers   []*http.Server
}

// listenMetrics checks the web configuration and opens the listeners.
func listenMetrics(w Web, version string) (*metricsServer, error) {
	scheme, err := checkWebConfig(w.ConfigFile)
	if err != nil {
		return nil, err
	}
	m := &metricsServer{web: w, version: version, scheme: scheme}
	if w.SystemdSocket {
		// LISTEN_FDS, LISTEN_PID (sd_listen_fds(3)); the variables are
		// unset so that nothing this process starts takes them too.
		ls, err := activation.Listeners()
		if err != nil {
			return nil, fmt.Errorf("take the sockets systemd passed: %w", err)
		}
		for _, l := range ls {
			if l != nil {
				m.listeners = append(m.listeners, l)
			}
		}
		if len(m.listeners) == 0 {
			return nil, abi.RefuseOption(nil, "systemd socket", true, "{systemd socket}: systemd passed no listening socket: start ringwatch through its .socket unit, or drop {systemd socket}")
		}
		return m, nil
	}
	for _, addr := range w.ListenAddresses {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			m.Close()
			return nil, listenError(addr, err)
		}
		m.listeners = append(m.listeners, ln)
	}
	return m, nil
}

// checkWebConfig validates a web configuration file with the toolkit (the same
// checks it makes when it serves: keys, users' bcrypt hashes, certificate
// and key) and returns the scheme it serves, http or https.
func checkWebConfig(path string) (string, error) {
	if path == "" {
		return "http", nil
	}
	if err := web.Validate(path); err != nil {
		return "", abi.RefuseOption(err, "web config file", path, "{web config file} %s: %v", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", abi.RefuseOption(err, "web config file", path, "{web config file} %s: %v", path, err)
	}
	var c web.Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return "", abi.RefuseOption(err, "web config file", path, "{web config file} %s: %v", path, err)
	}
	if c.TLSConfig.IsEnabled() {
		return "https", nil
	}
	return "http", nil
}

// serve starts serving the registry's metrics at the telemetry path, and the
// toolkit's landing page at /, on every listener. It returns at once. A
// listener that fails later is reported on stderr and its failure sent on
// failed, which has room for one: the run stops on it (faults.go).
func (m *metricsServer) serve(reg *prometheus.Registry, stderr io.Writer, failed chan<- error) error {
	// The files are read again as the process is now: one it may no longer
	// read fails here, not at the first scrape.
	if _, err := checkWebConfig(m.web.ConfigFile); err != nil {
		return fmt.Errorf("%w (after dropping capabilities: make the files readable by uid %d)", err, os.Geteuid())
	}
	mux := http.NewServeMux()
	mux.Handle(m.web.TelemetryPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// The telemetry path is never / (the command's parse refuses it): that
	// is the landing page's.
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "ringwatch",
		Description: "kernel-to-user BPF ring transport metrics",
		Version:     m.version,
		Profiling:   "false",
		Links:       []web.LandingLinks{{Address: m.web.TelemetryPath, Text: "Metrics"}},
		// Links are taken as paths under the landing page; an address
		// elsewhere goes in the page's own HTML.
		ExtraHTML: `<p>What each metric means: <a href="` + MetricsReference + `">the metrics table in ringwatch's documentation</a></p>`,
	})
	if err != nil {
		return fmt.Errorf("make the landing page: %w", err)
	}
	mux.Handle("/", landing)
	// The toolkit logs each listener at info level; only its warnings and
	// errors (a failed authentication's configuration error) are worth a
	// line on stderr.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// A server per listener, each served by the toolkit's web.Serve
	// (which sets the server's handler and TLS configuration, so servers
	// are not shared): any one failing stops the run, where
	// web.ServeMultiple would wait for all of them.
	for _, l := range m.listeners {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		m.servers = append(m.servers, srv)
		go func() {
			err := web.Serve(l, srv, m.web.toolkit(), logger)
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(stderr, "ringwatch: metrics server stopped: %v; stopping the run\n", err)
				select {
				case failed <- &metricsError{addr: l.Addr().String(), err: err}:
				default: // another listener's failure already stops it
				}
			}
		}()
	}
	return nil
}

// urls are where the metrics are served, for the banner.
func (m *metricsServer) urls() string {
	var urls []string
	for _, l := range m.listeners {
		urls = append(urls, m.scheme+"://"+l.Addr().String()+m.web.TelemetryPath)
	}
	return strings.Join(urls, ", ")
}

// Close stops serving and closes the listeners.
func (m *metricsServer) Close() {
	for _, srv := range m.servers {
		srv.Close()
	}
	for _, l := range m.listeners {
		l.Close() // already closed by the server's Close, or never served
	}
}

// newRegistry holds ringwatch's collectors and the Go and process ones.
func newRegistry(ours ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(ours...)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
