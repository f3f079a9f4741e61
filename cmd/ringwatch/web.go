package main

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
	"go.yaml.in/yaml/v2"
)

// defaultListenAddress is where run serves metrics unless told otherwise:
// loopback only, so that exposing them is a choice.
const defaultListenAddress = "127.0.0.1:9477"

// metricsReference is the table of every metric in docs/metrics.md, linked from the
// landing page.
const metricsReference = "https://github.com/ringwatch/ringwatch/blob/main/docs/metrics.md#metrics"

// webFlags are the flags of the Prometheus exporter-toolkit, the same names
// and meanings as every exporter built on it, on the standard flag package
// (the toolkit's own helper is for kingpin).
type webFlags struct {
	listen        addressList
	systemdSocket *bool
	configFile    *string
	telemetryPath *string
}

func addWebFlags(fs flagSet) *webFlags {
	w := &webFlags{listen: addressList{refusal: refusal{name: "web.listen-address"},
		addresses: []string{defaultListenAddress}, isDefault: true}}
	fs.Var(&w.listen, "web.listen-address",
		"address to serve metrics on; repeat it to serve on several; ':9477' listens on every interface")
	w.systemdSocket = fs.Bool("web.systemd-socket", false,
		"serve on the sockets systemd passes (socket activation) instead of --web.listen-address")
	w.configFile = fs.String("web.config.file", "",
		"exporter-toolkit web configuration file (YAML) for TLS and basic authentication; empty serves plain HTTP to anyone")
	w.telemetryPath = fs.String("web.telemetry-path", "/metrics", "HTTP path of the metrics")
	return w
}

// check validates the flags together, once parsed; each address was
// checked as it was given.
func (w *webFlags) check() error {
	if err := checkTelemetryPath(*w.telemetryPath); err != nil {
		return err
	}
	if *w.systemdSocket && !w.listen.isDefault {
		return fmt.Errorf("--web.listen-address %s does not apply with --web.systemd-socket, which serves on the sockets systemd passes: give one or the other (the .socket unit's ListenStream= says where)",
			w.listen.String())
	}
	if strings.HasSuffix(*w.configFile, "/") {
		return fmt.Errorf("--web.config.file %q names a directory: give the file, such as /etc/ringwatch/web-config.yml", *w.configFile)
	}
	return nil
}

// toolkit is the flags as the exporter-toolkit takes them.
func (w *webFlags) toolkit() *web.FlagConfig {
	return &web.FlagConfig{
		WebListenAddresses: &w.listen.addresses,
		WebSystemdSocket:   w.systemdSocket,
		WebConfigFile:      w.configFile,
	}
}

// addressList is --web.listen-address: repeatable, each address checked
// as it is given; the first one given replaces the default.
type addressList struct {
	refusal
	addresses []string
	isDefault bool
}

func (l *addressList) typeName() string { return "address" }

func (l *addressList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.addresses, ",")
}

func (l *addressList) Set(s string) error {
	if err := checkListenAddress(s); err != nil {
		return l.refuse("%w", err)
	}
	if l.isDefault {
		l.addresses, l.isDefault = nil, false
	}
	l.addresses = append(l.addresses, s)
	return nil
}

// metricsServer is run's HTTP side: listeners opened before anything is
// loaded, so that a taken port or a bad web configuration fails fast, and
// served by the exporter-toolkit, which adds TLS and basic authentication
// from --web.config.file. It opens the listeners itself and hands them to
// web.Serve, rather than let web.ListenAndServe open them, so that the
// port is taken before the producers load and the banner can name the
// address bound (port 0 included).
type metricsServer struct {
	flags     *webFlags
	listeners []net.Listener
	scheme    string // http or https
	servers   []*http.Server
}

// listenMetrics checks the web configuration and opens the listeners.
func listenMetrics(w *webFlags) (*metricsServer, error) {
	scheme, err := checkWebConfig(*w.configFile)
	if err != nil {
		return nil, err
	}
	m := &metricsServer{flags: w, scheme: scheme}
	if *w.systemdSocket {
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
			return nil, errors.New("--web.systemd-socket: systemd passed no listening socket: start ringwatch through its .socket unit, or drop --web.systemd-socket")
		}
		return m, nil
	}
	for _, addr := range w.listen.addresses {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			m.Close()
			return nil, listenError(addr, err)
		}
		m.listeners = append(m.listeners, ln)
	}
	return m, nil
}

// checkWebConfig validates a --web.config.file with the toolkit (the same
// checks it makes when it serves: keys, users' bcrypt hashes, certificate
// and key) and returns the scheme it serves, http or https.
func checkWebConfig(path string) (string, error) {
	if path == "" {
		return "http", nil
	}
	if err := web.Validate(path); err != nil {
		return "", fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	var c web.Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	if c.TLSConfig.IsEnabled() {
		return "https", nil
	}
	return "http", nil
}

// serve starts serving the registry's metrics at the telemetry path, and the
// toolkit's landing page at /, on every listener. It returns at once. A
// listener that fails later is reported on stderr and its failure sent on
// failed, which has room for one: the run stops on it (runfaults.go).
func (m *metricsServer) serve(reg *prometheus.Registry, stderr io.Writer, failed chan<- error) error {
	// The files are read again as the process is now: one it may no longer
	// read fails here, not at the first scrape.
	if _, err := checkWebConfig(*m.flags.configFile); err != nil {
		return fmt.Errorf("%w (after dropping capabilities: make the files readable by uid %d)", err, os.Geteuid())
	}
	mux := http.NewServeMux()
	mux.Handle(*m.flags.telemetryPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// The telemetry path is never / (checkTelemetryPath): that is the
	// landing page's.
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "ringwatch",
		Description: "kernel-to-user BPF ring transport metrics",
		Version:     version,
		Profiling:   "false",
		Links:       []web.LandingLinks{{Address: *m.flags.telemetryPath, Text: "Metrics"}},
		// Links are taken as paths under the landing page; an address
		// elsewhere goes in the page's own HTML.
		ExtraHTML: `<p>What each metric means: <a href="` + metricsReference + `">the metrics table in ringwatch's documentation</a></p>`,
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
			err := web.Serve(l, srv, m.flags.toolkit(), logger)
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
		urls = append(urls, m.scheme+"://"+l.Addr().String()+*m.flags.telemetryPath)
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
