package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ringwatch/ringwatch/internal/daemon"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// TestRunServesTLSAndBasicAuth runs ringwatch with a web configuration of
// a certificate and a bcrypt-hashed password the test makes: a scrape over
// TLS with the password gets the metrics; plain HTTP, no password and a
// wrong one do not.
func TestRunServesTLSAndBasicAuth(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	dir := t.TempDir()
	roots := testenv.WriteCertificate(t, dir, "tls.crt", "tls.key")
	hash, err := bcrypt.GenerateFromPassword([]byte("right horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "web.yml")
	testenv.WriteFile(t, config, fmt.Sprintf("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: %s\n", hash))

	cmd, stderr, banner := startRingwatch(t, io.Discard, "run", "--web.config.file", config,
		"--web.listen-address", "127.0.0.1:0", "--ctl.socket", "")
	url := regexp.MustCompile(`https://(\S+)/metrics`).FindStringSubmatch(banner)
	if url == nil {
		t.Fatalf("banner names no https metrics URL: %q", banner)
	}
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	scrape := func(client *http.Client, url, user, password string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	if code, body := scrape(tlsClient, url[0], "prometheus", "right horse"); code != http.StatusOK || !strings.Contains(body, "ringwatch_build_info") {
		t.Errorf("TLS scrape with the password: %d\n%.300s", code, body)
	}
	if code, body := scrape(httpClient, "http://"+url[1]+"/metrics", "prometheus", "right horse"); code == http.StatusOK || strings.Contains(body, "ringwatch_") {
		t.Errorf("plain HTTP scrape: %d, want a refusal\n%.300s", code, body)
	}
	if code, _ := scrape(tlsClient, url[0], "", ""); code != http.StatusUnauthorized {
		t.Errorf("TLS scrape without a password: %d, want 401", code)
	}
	if code, _ := scrape(tlsClient, url[0], "prometheus", "wrong horse"); code != http.StatusUnauthorized {
		t.Errorf("TLS scrape with a wrong password: %d, want 401", code)
	}
	// The landing page links the metrics and docs/metrics.md's table of them.
	code, page := scrape(tlsClient, "https://"+url[1]+"/", "prometheus", "right horse")
	if code != http.StatusOK || !strings.Contains(page, `href="/metrics"`) ||
		!strings.Contains(page, `href="`+daemon.MetricsReference+`"`) {
		t.Errorf("landing page: %d\n%s", code, page)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ringwatch run after SIGINT: %v\n%s", err, rest)
	}
}

// TestRunRefusesBadWebSetup gives run web configurations the toolkit
// refuses, and a port that is taken: each must stop the start, before
// anything is loaded, with exit status 1 and a message that says what is
// wrong. No privilege is needed to get that far.
func TestRunRefusesBadWebSetup(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteCertificate(t, dir, "tls.crt", "tls.key")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name   string
		config string // "" for none
		args   []string
		want   string
	}{
		{"unknown key", "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth:\n  x: y\n", nil,
			"field basic_auth not found in type web.Config"},
		{"not YAML", "tls_server_config: [\n", nil, "yaml: line"},
		{"missing key file", "tls_server_config:\n  cert_file: tls.crt\n  key_file: nowhere.key\n", nil, "nowhere.key"},
		{"password not hashed", "basic_auth_users:\n  prometheus: plaintext\n", nil, "crypto/bcrypt"},
		{"no such file", "", []string{"--web.config.file", filepath.Join(dir, "absent.yml")}, "absent.yml: no such file"},
		{"port taken", "", []string{"--web.listen-address", "127.0.0.1:1", "--web.listen-address", taken.Addr().String()},
			"address already in use: another ringwatch run, or another program, has it"},
		{"no systemd socket", "", []string{"--web.systemd-socket"}, "systemd passed no listening socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"run", "--ctl.socket", ""}
			if tc.config != "" {
				path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yml")
				testenv.WriteFile(t, path, tc.config)
				args = append(args, "--web.config.file", path)
			}
			if tc.name != "port taken" && tc.name != "no systemd socket" {
				args = append(args, "--web.listen-address", "127.0.0.1:0")
			}
			out, err := ringwatchCmd(append(args, tc.args...)...).CombinedOutput()
			if code := exitCode(err); code != exitError {
				t.Errorf("exit status %d (%v), want %d:\n%s", code, err, exitError, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), "carrying") {
				t.Errorf("ringwatch started before refusing:\n%s", out)
			}
		})
	}
}
