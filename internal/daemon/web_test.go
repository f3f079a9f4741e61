package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// TestExampleWebConfig checks deploy/web-config.yml the way run checks a
// --web.config.file, beside a certificate and key of the names it gives, and
// that its user's password is the one its comment says.
func TestExampleWebConfig(t *testing.T) {
	example, err := os.ReadFile("../../deploy/web-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		TLS struct {
			Cert string `yaml:"cert_file"`
			Key  string `yaml:"key_file"`
		} `yaml:"tls_server_config"`
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(example, &c); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testenv.WriteCertificate(t, dir, c.TLS.Cert, c.TLS.Key)
	config := filepath.Join(dir, "web-config.yml")
	testenv.WriteFile(t, config, string(example))
	scheme, err := checkWebConfig(config)
	if err != nil || scheme != "https" {
		t.Errorf("checkWebConfig(example) = %q, %v; want https", scheme, err)
	}
	m := regexp.MustCompile(`user (\S+), password "([^"]+)"`).FindStringSubmatch(string(example))
	if m == nil {
		t.Fatal("the example's comment names no user and password")
	}
	if err := bcrypt.CompareHashAndPassword([]byte(c.Users[m[1]]), []byte(m[2])); err != nil {
		t.Errorf("the hash of user %s is not that of %q: %v", m[1], m[2], err)
	}
}
