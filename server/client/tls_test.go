package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costor/costor/server/api"
)

// testCert is a self-signed certificate like the one a server makes at
// first start, with its PEM file.
type testCert struct {
	tls         tls.Certificate
	pemFile     string
	fingerprint string // "SHA256:<hex>"
}

func newTestCert(t *testing.T, hosts ...string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "costor test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return testCert{
		tls:         tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pemFile:     file,
		fingerprint: "SHA256:" + hex.EncodeToString(sum[:]),
	}
}

// startTLS starts a real TLS listener (HTTP/2 enabled) with cert.
func startTLS(t *testing.T, cert testCert, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = true
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert.tls}}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func whoamiHandler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("request over %s, want HTTP/2", r.Proto)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q", got)
		}
		json.NewEncoder(w).Encode(api.Whoami{Role: api.RoleAdmin, Name: "x"})
	})
}

func TestParseFingerprint(t *testing.T) {
	hexs := strings.Repeat("ab", 32)
	colons := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"SHA256:" + hexs, true},
		{"sha256:" + strings.ToUpper(hexs), true},
		{"SHA256:" + colons, true},
		{colons, true},
		{" SHA256:" + hexs + "\n", true},
		{"SHA256:" + hexs[:62], false},
		{"SHA256:" + hexs + "ab", false},
		{"SHA256:" + hexs[:62] + "zz", false},
		{"SHA1:" + hexs, false},
		{"", false},
	} {
		fp, err := ParseFingerprint(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseFingerprint(%q) = %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && hex.EncodeToString(fp[:]) != hexs {
			t.Errorf("ParseFingerprint(%q) = %x", tt.in, fp)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{URL: "https://127.0.0.1:8443"}, "the server's certificate is not trusted: give --cacert FILE or --tls-fingerprint SHA256:…"},
		{Options{URL: "http://127.0.0.1:8443", Fingerprint: "SHA256:" + strings.Repeat("0", 64)}, "use https://127.0.0.1:8443"},
		{Options{URL: "127.0.0.1:8443", Fingerprint: "SHA256:" + strings.Repeat("0", 64)}, "https://"},
		{Options{URL: "https://h:1/v1", Fingerprint: "SHA256:" + strings.Repeat("0", 64)}, "nothing after it"},
		{Options{URL: "https://h:1", Fingerprint: "SHA256:00"}, "64 hex digits"},
		{Options{URL: "https://h:1", CACertFile: "/nonexistent/cert.pem"}, "--cacert"},
		{Options{URL: "https://h:1", Fingerprint: "SHA256:" + strings.Repeat("0", 64), Token: "a b"}, "token"},
	} {
		_, err := New(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
		}
	}
	c, err := New(Options{URL: "https://127.0.0.1:8443/", Fingerprint: "SHA256:" + strings.Repeat("0", 64)})
	if err != nil {
		t.Fatalf("trailing slash: %v", err)
	}
	if c.URL() != "https://127.0.0.1:8443" {
		t.Errorf("URL() = %q", c.URL())
	}
}

func TestTrust(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, "127.0.0.1")
	other := newTestCert(t, "127.0.0.1")
	ts := startTLS(t, cert, whoamiHandler(t))
	for _, tt := range []struct {
		name        string
		cacert, pin string
		want        string // "" ok, else part of the error
	}{
		{"pin", "", cert.fingerprint, ""},
		{"pin with colons lower case", "", "sha256:" + colonHex(cert.fingerprint), ""},
		{"cacert", cert.pemFile, "", ""},
		{"cacert and pin", cert.pemFile, cert.fingerprint, ""},
		{"wrong pin", "", other.fingerprint, "does not match --tls-fingerprint"},
		{"wrong cacert", other.pemFile, "", "does not match --cacert"},
		{"right cacert wrong pin", cert.pemFile, other.fingerprint, "does not match --tls-fingerprint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options{URL: ts.URL, Token: "tok", CACertFile: tt.cacert, Fingerprint: tt.pin})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Whoami(context.Background())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Whoami: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrUntrusted) {
				t.Fatalf("Whoami = %v, want ErrUntrusted saying %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), ts.URL) {
				t.Errorf("error %q does not name %s", err, ts.URL)
			}
		})
	}
}

func colonHex(fp string) string {
	h := strings.ToLower(strings.TrimPrefix(fp, "SHA256:"))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestHostnameMismatch(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, "costor.invalid")
	ts := startTLS(t, cert, whoamiHandler(t))
	c, err := New(Options{URL: ts.URL, Token: "tok", CACertFile: cert.pemFile})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Whoami(context.Background())
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "--tls-fingerprint") {
		t.Fatalf("Whoami = %v, want ErrUntrusted suggesting --tls-fingerprint", err)
	}
	// The pin does not care for names.
	c, err = New(Options{URL: ts.URL, Token: "tok", Fingerprint: cert.fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Whoami(context.Background()); err != nil {
		t.Fatalf("pinned Whoami: %v", err)
	}
}

func TestPlainHTTPServer(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	c, err := New(Options{URL: strings.Replace(ts.URL, "http://", "https://", 1), Fingerprint: "SHA256:" + strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Whoami(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not speak TLS") {
		t.Fatalf("Whoami = %v, want 'does not speak TLS'", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(Options{URL: "https://" + addr, Fingerprint: "SHA256:" + strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Whoami(ctx)
	if err == nil || !strings.Contains(err.Error(), "cannot connect to "+addr+": connection refused") {
		t.Fatalf("Whoami = %v, want connection refused naming %s", err, addr)
	}
}
