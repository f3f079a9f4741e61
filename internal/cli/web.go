package cli

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
)

// CheckListenAddress refuses an address no listener could take, before
// anything is loaded: it must be host:port, the host may be empty (every
// interface), and the port a number from 0 to 65535. flagName is the flag
// that gave it, as typed.
func CheckListenAddress(flagName, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q is not host:port: give one such as 127.0.0.1:9477, [::1]:9477 or :9477 (every interface)", flagName, addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		return fmt.Errorf("%s %q: port %q is not a number from 0 to 65535: give one such as 127.0.0.1:9477", flagName, addr, port)
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("%s %q: %q is not a host name or address: give one such as 127.0.0.1:9477", flagName, addr, host)
	}
	return nil
}

// CheckTelemetryPath refuses a path, given by flagName, that the HTTP
// server could not serve the metrics on: the landing page has /, and a
// request's path holds no query, fragment, space or percent escape, and
// no {wildcard}.
func CheckTelemetryPath(flagName, path string) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("%s %q must start with /: give one such as /metrics", flagName, path)
	case path == "/":
		return fmt.Errorf("%s / is the landing page's: give another path, such as /metrics", flagName)
	case strings.ContainsAny(path, "?#%{} \t\n") || strings.IndexFunc(path, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q holds a character a URL path cannot (?, #, %%, {, }, a space or a control character): give a plain path such as /metrics", flagName, path)
	}
	return nil
}
