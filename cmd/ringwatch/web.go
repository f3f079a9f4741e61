package main

import (
	"fmt"
	"strings"
)

// defaultListenAddress is where run serves metrics unless told otherwise:
// loopback only, so that exposing them is a choice.
const defaultListenAddress = "127.0.0.1:9477"

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
