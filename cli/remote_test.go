package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/server/api"
)

func TestRemoteURL(t *testing.T) {
	tests := []struct {
		loc     string
		want    string
		remote  bool
		wantErr string
	}{
		{loc: "", remote: false},
		{loc: "/srv/backup", remote: false},
		{loc: "relative/dir", remote: false},
		{loc: "https://backup.example:8443", want: "https://backup.example:8443", remote: true},
		{loc: "https://backup.example:8443/", want: "https://backup.example:8443", remote: true},
		{loc: "HTTPS://10.0.0.5:8443", want: "https://10.0.0.5:8443", remote: true},
		{loc: "https://[::1]:8443", want: "https://[::1]:8443", remote: true},
		{loc: "https://backup.example", want: "https://backup.example", remote: true},
		{loc: "http://backup.example:8443", remote: true, wantErr: "HTTPS only"},
		{loc: "HTTP://backup.example:8443", remote: true, wantErr: "HTTPS only"},
		{loc: "https://", remote: true, wantErr: "not a server address"},
		{loc: "https://:8443", remote: true, wantErr: "not a server address"},
		{loc: "https://backup.example:8443/repo", remote: true, wantErr: "without a path"},
		{loc: "https://backup.example:8443/?x=1", remote: true, wantErr: "without a path"},
		{loc: "https://admin:pw@backup.example:8443", remote: true, wantErr: "--token-file"},
	}
	for _, tt := range tests {
		t.Run(tt.loc, func(t *testing.T) {
			got, remote, err := remoteURL(tt.loc)
			if remote != tt.remote {
				t.Errorf("remote = %v, want %v", remote, tt.remote)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw") && strings.Contains(tt.loc, "pw@") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("url = %q, want %q", got, tt.want)
			}
		})
	}
}

const testFP = "3f1c0a5e9b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f2a4c6e8b0d1f"

func TestServerTrust(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	colons := ""
	for i := 0; i < len(testFP); i += 2 {
		if i > 0 {
			colons += ":"
		}
		colons += strings.ToUpper(testFP[i : i+2])
	}
	tests := []struct {
		name            string
		cacert, fp      string
		wantCA, wantFP  string
		wantErrContains string
	}{
		{name: "neither", wantErrContains: "--cacert FILE"},
		{name: "cacert", cacert: cert, wantCA: cert},
		{name: "missing cacert", cacert: filepath.Join(dir, "nope.pem"), wantErrContains: "DATA/tls/cert.pem"},
		{name: "fingerprint", fp: "SHA256:" + testFP, wantFP: "SHA256:" + testFP},
		{name: "fingerprint with colons, upper case", fp: "sha256:" + colons, wantFP: "SHA256:" + testFP},
		{name: "both", cacert: cert, fp: "SHA256:" + testFP, wantCA: cert, wantFP: "SHA256:" + testFP},
		{name: "short fingerprint", fp: "SHA256:abcd", wantErrContains: "--tls-fingerprint"},
		{name: "not hex", fp: "SHA256:" + strings.Repeat("zz", 32), wantErrContains: "--tls-fingerprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, fp, err := serverTrust("https://h:1", tt.cacert, tt.fp)
			if tt.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrContains) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErrContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ca != tt.wantCA || fp != tt.wantFP {
				t.Errorf("got (%q, %q), want (%q, %q)", ca, fp, tt.wantCA, tt.wantFP)
			}
		})
	}
}

func TestTokenSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "costor_0123456789abcdef_" + strings.Repeat("A", 43)
	goodFile := write("good", good+"\n")
	other := "costor_fedcba9876543210_" + strings.Repeat("B", 43)
	noEnv := func(string) (string, bool) { return "", false }
	withEnv := func(k string) (string, bool) {
		if k == "COSTOR_TOKEN" {
			return other, true
		}
		return "", false
	}
	tests := []struct {
		name    string
		file    string
		env     func(string) (string, bool)
		want    string
		wantErr string
	}{
		{name: "file", file: goodFile, env: noEnv, want: good},
		{name: "file wins over COSTOR_TOKEN", file: goodFile, env: withEnv, want: good},
		{name: "COSTOR_TOKEN", env: withEnv, want: other},
		{name: "none", env: noEnv, wantErr: "--token-file"},
		{name: "missing file", file: filepath.Join(dir, "nope"), env: noEnv, wantErr: "read token"},
		{name: "empty file", file: write("empty", "\n"), env: noEnv, wantErr: "is empty"},
		{name: "not a token", file: write("pw", "hunter2\n"), env: noEnv, wantErr: "does not hold a costor token"},
		{name: "two lines", file: write("two", good+"\n"+other+"\n"), env: noEnv, wantErr: "one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tokenSecret("https://h:1", tt.file, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error shows the file's content: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCacheDirFor(t *testing.T) {
	got, err := cacheDirFor("/home/a/.cache", "4f2a9c", "0123456789abcdef", purposeMount)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("/home/a/.cache", "costor", "server", "4f2a9c", "0123456789abcdef", "mount"); got != want {
		t.Errorf("dir = %q, want %q", got, want)
	}
	// A server must not choose where on the client its answers go.
	for _, bad := range [][2]string{{"..", "0123"}, {"../../etc", "0123"}, {"abc", "../x"}, {"", "0123"}, {"abc", ""}, {"a/b", "0123"}, {"abc", "."}} {
		if _, err := cacheDirFor("/c", bad[0], bad[1], purposeClient); err == nil {
			t.Errorf("cacheDirFor(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestCheckBackupToken(t *testing.T) {
	tests := []struct {
		name    string
		who     api.Whoami
		host    string
		wantErr string
	}{
		{name: "agent of this host", who: api.Whoami{Name: "web1", Role: api.RoleAgent, Host: "web1"}, host: "web1"},
		{name: "admin", who: api.Whoami{Name: "root", Role: api.RoleAdmin}, host: "web1"},
		{name: "agent of another host", who: api.Whoami{Name: "web2", Role: api.RoleAgent, Host: "web2"}, host: "web1", wantErr: `agent token for host "web2": it cannot back up host "web1"`},
		{name: "reader", who: api.Whoami{Name: "r", Role: api.RoleReader, Host: "web1"}, host: "web1", wantErr: "needs an agent token"},
		{name: "peer", who: api.Whoami{Name: "site-b", Role: api.RolePeer}, host: "web1", wantErr: "needs an agent token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBackupToken(tt.who, tt.host)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTokenRequest(t *testing.T) {
	tests := []struct {
		role, host string
		ok         bool
	}{
		{"agent", "web1", true}, {"agent", "", false},
		{"reader", "", true}, {"reader", "web1", true},
		{"admin", "", true}, {"admin", "web1", false},
		{"peer", "", true}, {"peer", "site-b", false},
		{"root", "", false}, {"", "", false}, {"Agent", "web1", false},
	}
	for _, tt := range tests {
		_, err := tokenRequest(tt.role, tt.host, "")
		if (err == nil) != tt.ok {
			t.Errorf("tokenRequest(%q, %q): err = %v, want ok=%v", tt.role, tt.host, err, tt.ok)
		}
	}
}

func TestTokenIDArg(t *testing.T) {
	for in, want := range map[string]string{
		"0123456789abcdef": "0123456789abcdef",
		"0123456789ABCDEF": "0123456789abcdef",
		"costor_0123456789abcdef_" + strings.Repeat("x", 43): "0123456789abcdef",
	} {
		got, err := tokenIDArg(in)
		if err != nil || got != want {
			t.Errorf("tokenIDArg(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0123", "0123456789abcdeg", "costor_xyz_abc"} {
		if _, err := tokenIDArg(bad); err == nil {
			t.Errorf("tokenIDArg(%q) accepted", bad)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2025-03-01T08:30:00Z", time.Date(2025, 3, 1, 8, 30, 0, 0, time.UTC)},
		{"2025-03-01T08:30:00+02:00", time.Date(2025, 3, 1, 6, 30, 0, 0, time.UTC)},
		{"24h", now.Add(-24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.AddDate(0, 0, -7)},
		{"2025-03-01", time.Date(2025, 3, 1, 0, 0, 0, 0, time.Local)},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if err != nil {
			t.Errorf("parseSince(%q): %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"yesterday", "-24h", "1w", "2025-13-01", "d"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}

func TestClientURL(t *testing.T) {
	host, _ := os.Hostname()
	for addr, want := range map[string]string{
		"127.0.0.1:8443": "https://127.0.0.1:8443",
		"[::1]:8443":     "https://[::1]:8443",
		"[::]:8443":      "https://" + host + ":8443",
		"0.0.0.0:9000":   "https://" + host + ":9000",
	} {
		if got := clientURL(addr); got != want {
			t.Errorf("clientURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestGlobalFlagsContract pins the flag names and environment variables
// of PRODUCT.md's table: scripts outside the project use them.
func TestGlobalFlagsContract(t *testing.T) {
	want := map[string][]string{
		"repo": {"COSTOR_REPO"}, "password-file": {"COSTOR_PASSWORD_FILE"},
		"token-file": {"COSTOR_TOKEN_FILE"}, "cacert": {"COSTOR_CACERT"}, "tls-fingerprint": nil,
		"org-key": {"COSTOR_ORG_KEY_FILE"}, "host-key": {"COSTOR_HOST_KEY_FILE"},
		"recovery-key": {"COSTOR_RECOVERY_KEY_FILE"}, "json": nil, "quiet": nil, "verbose": nil,
	}
	got := map[string][]string{}
	for _, f := range NewApp().Flags {
		var env []string
		if sf, ok := f.(*ucli.StringFlag); ok {
			env = sf.EnvVars
		}
		got[f.Names()[0]] = env
	}
	for name, env := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("global flag --%s is missing", name)
			continue
		}
		if !slices.Equal(g, env) {
			t.Errorf("--%s env = %v, want %v", name, g, env)
		}
	}
	for _, cmd := range []string{"server", "token", "audit"} {
		found := false
		for _, c := range NewApp().Commands {
			found = found || c.Name == cmd
		}
		if !found {
			t.Errorf("command %s is missing", cmd)
		}
	}
}

// TestServerRepoRefusedWhereLocalOnly: init and repair work on a local
// directory and say so for a server, instead of creating "https:" dirs.
func TestServerRepoRefusedWhereLocalOnly(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{
		{"costor", "--repo", "https://127.0.0.1:1", "init"},
		{"costor", "--repo", "https://127.0.0.1:1", "repair", "index"},
		{"costor", "--repo", "http://127.0.0.1:1", "snapshots"},
	} {
		err := Run(t.Context(), args)
		if err == nil {
			t.Errorf("%v: no error", args)
			continue
		}
		if !strings.Contains(err.Error(), "server") && !strings.Contains(err.Error(), "HTTPS") {
			t.Errorf("%v: %v", args, err)
		}
		if ExitCode(err) != ExitError {
			t.Errorf("%v: exit code %d", args, ExitCode(err))
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("something was created in the working directory: %v", entries)
	}
}
