package main

import (
	"fmt"
	"strings"

	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/daemon"
)

// defaultListenAddress is where run serves metrics unless told otherwise:
// loopback only, so that exposing them is a choice.
const defaultListenAddress = "127.0.0.1:9477"

// webFlags are the flags of the Prometheus exporter-toolkit, the same names
// and meanings as every exporter built on it, on the standard flag package
// (the toolkit's own helper is for kingpin).
type webFlags struct {
	listen        *[]string
	systemdSocket *bool
	configFile    *string
	telemetryPath *string
}

func addWebFlags(fs cli.FlagSet) *webFlags {
	w := &webFlags{}
	// Repeatable, each address checked as it is given; the first one
	// given replaces the default.
	w.listen = fs.List("web.listen-address", "address", []string{defaultListenAddress},
		"address to serve metrics on; repeat it to serve on several; ':9477' listens on every interface",
		func(addr string) error { return cli.CheckListenAddress("--web.listen-address", addr) })
	w.systemdSocket = fs.Bool("web.systemd-socket", false,
		"serve on the sockets systemd passes (socket activation) instead of --web.listen-address")
	w.configFile = fs.String("web.config.file", "",
		"exporter-toolkit web configuration file (YAML) for TLS and basic authentication; empty serves plain HTTP to anyone")
	w.telemetryPath = fs.String("web.telemetry-path", "/metrics", "HTTP path of the metrics")
	return w
}

// config checks the flags together, once fs is parsed (each address was
// checked as it was given), and returns them as the daemon takes them.
func (w *webFlags) config(fs cli.FlagSet) (daemon.Web, error) {
	if err := cli.CheckTelemetryPath("--web.telemetry-path", *w.telemetryPath); err != nil {
		return daemon.Web{}, err
	}
	if *w.systemdSocket && fs.Given("web.listen-address") {
		return daemon.Web{}, fmt.Errorf("--web.listen-address %s does not apply with --web.systemd-socket, which serves on the sockets systemd passes: give one or the other (the .socket unit's ListenStream= says where)",
			strings.Join(*w.listen, ","))
	}
	if strings.HasSuffix(*w.configFile, "/") {
		return daemon.Web{}, fmt.Errorf("--web.config.file %q names a directory: give the file, such as /etc/ringwatch/web-config.yml", *w.configFile)
	}
	return daemon.Web{ListenAddresses: *w.listen, SystemdSocket: *w.systemdSocket,
		ConfigFile: *w.configFile, TelemetryPath: *w.telemetryPath}, nil
}
