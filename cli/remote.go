package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/server/api"
	"github.com/costor/costor/server/client"
)

// Cache purposes: a mount keeps its own cache index so that backups and
// other commands go on while it is mounted.
const (
	purposeClient = "client"
	purposeMount  = "mount"
)

// remoteURL reports whether loc (--repo) names a server and returns its
// base URL, https://HOST[:PORT]. Plain HTTP is refused: a server speaks
// HTTPS only, and a token must never cross a network in the clear.
func remoteURL(loc string) (string, bool, error) {
	lower := strings.ToLower(loc)
	switch {
	case strings.HasPrefix(lower, "http://"):
		return "", true, fmt.Errorf("repository %s: a costor server speaks HTTPS only: use https://%s (with --cacert or --tls-fingerprint)", loc, loc[len("http://"):])
	case !strings.HasPrefix(lower, "https://"):
		return "", false, nil
	}
	u, err := url.Parse(loc)
	if err != nil || u.Hostname() == "" {
		return "", true, fmt.Errorf("repository %q is not a server address: give https://HOST:PORT", loc)
	}
	if u.User != nil {
		return "", true, fmt.Errorf("repository %s: put no user or password in the address; give the token with --token-file", u.Redacted())
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", true, fmt.Errorf("repository %s: give the server as https://HOST:PORT, without a path", loc)
	}
	return "https://" + u.Host, true, nil
}

// normalizeFingerprint checks --tls-fingerprint (SHA256:<hex of the
// SHA-256 of the server's certificate, DER>, colons allowed, any case)
// before anything connects, and returns it as SHA256:<64 lower-case hex>.
func normalizeFingerprint(s string) (string, error) {
	fp, err := client.ParseFingerprint(s)
	if err != nil {
		return "", fmt.Errorf("--tls-fingerprint: %w; `costor server` prints it at start", err)
	}
	return "SHA256:" + hex.EncodeToString(fp[:]), nil
}

// serverTrust chooses how a server's certificate is verified: a
// certificate file to trust (the server's own, or the CA that signed it),
// a pinned fingerprint, or both (then both must match). There is no way to
// skip verification.
func serverTrust(serverURL, caCert, fingerprint string) (string, string, error) {
	if caCert == "" && fingerprint == "" {
		return "", "", fmt.Errorf("server %s: say how to trust it: --cacert FILE (the server's DATA/tls/cert.pem) or --tls-fingerprint SHA256:… (printed by `costor server` at start)", serverURL)
	}
	if caCert != "" {
		if _, err := os.Stat(caCert); err != nil {
			return "", "", fmt.Errorf("server certificate --cacert: %w (copy DATA/tls/cert.pem from the server)", err)
		}
	}
	if fingerprint != "" {
		fp, err := normalizeFingerprint(fingerprint)
		if err != nil {
			return "", "", err
		}
		fingerprint = fp
	}
	return caCert, fingerprint, nil
}

// tokenSecret finds the token for a server: --token-file (or
// COSTOR_TOKEN_FILE), else COSTOR_TOKEN holding the token itself.
func tokenSecret(serverURL, file string, env func(string) (string, bool)) (string, error) {
	var tok, from string
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read token: %w", err)
		}
		tok, from = strings.TrimSpace(string(data)), "token file "+file
	} else if v, ok := env("COSTOR_TOKEN"); ok && strings.TrimSpace(v) != "" {
		tok, from = strings.TrimSpace(v), "COSTOR_TOKEN"
	} else {
		return "", fmt.Errorf("server %s needs a token: give --token-file FILE (or COSTOR_TOKEN_FILE, or COSTOR_TOKEN); an admin creates one with `costor token create`", serverURL)
	}
	if tok == "" {
		return "", fmt.Errorf("%s is empty: it should hold one costor token (costor_…)", from)
	}
	if !strings.HasPrefix(tok, "costor_") || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%s does not hold a costor token (one line, costor_…)", from)
	}
	return tok, nil
}

// safeName matches identifiers a server sends that name local directories.
var safeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// cacheDirFor is the local cache index of one server repository as seen
// by one token: ROOT/costor/server/<repository ID>/<token ID>/<purpose>.
// The IDs come from the server and are checked: a server must not choose
// where on the client its answers are written.
func cacheDirFor(root, repoID, tokenID, purpose string) (string, error) {
	if !safeName.MatchString(repoID) {
		return "", fmt.Errorf("the server sent an unusable repository ID %q", repoID)
	}
	if !safeName.MatchString(tokenID) {
		return "", fmt.Errorf("the server sent an unusable token ID %q", tokenID)
	}
	return filepath.Join(root, "costor", "server", repoID, tokenID, purpose), nil
}

// serverConn is a connection to a site server with the caller's identity.
type serverConn struct {
	url    string
	client *client.Client
	who    api.Whoami
}

// dialServer connects to the server named by --repo and asks who the
// token is; nothing else happens before the token is known to be good.
func (e *env) dialServer(ctx context.Context, serverURL string) (*serverConn, error) {
	if e.server != nil {
		return e.server, nil
	}
	caCert, fp, err := serverTrust(serverURL, e.c.String("cacert"), e.c.String("tls-fingerprint"))
	if err != nil {
		return nil, err
	}
	tok, err := tokenSecret(serverURL, e.c.String("token-file"), os.LookupEnv)
	if err != nil {
		return nil, err
	}
	// The client's errors name the server and the action themselves.
	cl, err := client.New(client.Options{
		URL: serverURL, Token: tok, CACertFile: caCert, Fingerprint: fp, Logger: e.log,
	})
	if err != nil {
		return nil, err
	}
	who, err := cl.Whoami(ctx)
	if err != nil {
		cl.Close()
		return nil, err
	}
	e.server = &serverConn{url: serverURL, client: cl, who: who}
	return e.server, nil
}

// closeServer releases the connection, if one was made.
func (e *env) closeServer() {
	if e.server != nil {
		e.server.client.Close()
		e.server = nil
	}
}

// serverForAdmin connects to --repo, which must be a server, for an admin
// command (token, audit, prune).
func (e *env) serverForAdmin(ctx context.Context, command string) (*serverConn, error) {
	loc := e.c.String("repo")
	u, remote, err := remoteURL(loc)
	if err != nil {
		return nil, err
	}
	if !remote {
		return nil, fmt.Errorf("%s talks to a server: give --repo https://HOST:PORT with an admin --token-file and --cacert", command)
	}
	s, err := e.dialServer(ctx, u)
	if err != nil {
		return nil, err
	}
	if s.who.Role != api.RoleAdmin {
		return nil, fmt.Errorf("%s needs an admin token; the token %q is %s", command, s.who.Name, tokenDesc(s.who))
	}
	return s, nil
}

// tokenDesc describes a token's role for messages: "an agent token for
// host web1".
func tokenDesc(w api.Whoami) string {
	article := "a"
	if w.Role == api.RoleAdmin || w.Role == api.RoleAgent {
		article = "an"
	}
	switch {
	case w.Host != "":
		return fmt.Sprintf("%s %s token for host %s", article, w.Role, w.Host)
	case w.Role == api.RoleReader:
		return "a reader token for every host"
	}
	return fmt.Sprintf("%s %s token", article, w.Role)
}

// remoteOpen says what a command needs of a server repository.
type remoteOpen struct {
	command string
	purpose string // purposeClient or purposeMount
	// backupHost, for a backup: the host the snapshot is recorded under;
	// the token must be allowed to write it.
	backupHost string
	// hostKey, for a backup: this host's key pair.
	hostKey *crypto.HostKey
}

// openRemote opens the server repository at serverURL. Everything is
// decrypted here, on the client; the server only stores and serves
// ciphertext, filtered by the token's role.
func (e *env) openRemote(ctx context.Context, serverURL string, ro remoteOpen) (*repo.Repository, string, error) {
	s, err := e.dialServer(ctx, serverURL)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*repo.Repository, string, error) {
		e.closeServer()
		return nil, "", err
	}
	if ro.backupHost != "" {
		if err := checkBackupToken(s.who, ro.backupHost); err != nil {
			return fail(err)
		}
		if ro.hostKey == nil {
			return fail(errors.New("a backup to a server needs this host's key: give --host-key FILE (created if missing)"))
		}
		if ro.hostKey.Host != ro.backupHost {
			return fail(fmt.Errorf("host key %s is for host %q, not %q: give --host-key FILE for %s (a new file is created), or back up as --host %s",
				e.hostKeyFileDesc(), ro.hostKey.Host, ro.backupHost, ro.backupHost, ro.hostKey.Host))
		}
	}
	creds, err := e.remoteCredentials(ro)
	if err != nil {
		return fail(err)
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return fail(fmt.Errorf("find your cache directory for the server's local index: %w", err))
	}
	dir, err := cacheDirFor(cacheRoot, s.who.RepositoryID, s.who.TokenID, ro.purpose)
	if err != nil {
		return fail(fmt.Errorf("server %s: %w", serverURL, err))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(fmt.Errorf("create the local index %s: %w", dir, err))
	}
	r, err := repo.Open(ctx, repo.Options{
		Storage: s.client.Storage(), Remote: s.client, IndexDir: dir,
		Logger: e.log, Command: ro.command, LockWait: lockWait(ro.command),
		OnWait: func(holder string) {
			e.info("waiting for the local index %s, used by another costor process (Ctrl-C to stop)", dir)
		},
	}, creds)
	if err != nil {
		return fail(err)
	}
	return r, dir, nil
}

// checkBackupToken refuses, before any file is read, a backup the token
// may not write.
func checkBackupToken(w api.Whoami, host string) error {
	switch w.Role {
	case api.RoleAdmin:
		return nil
	case api.RoleAgent:
		if w.Host != host {
			return fmt.Errorf("the token %q is an agent token for host %q: it cannot back up host %q (use the token made for %s, or give --host %s)", w.Name, w.Host, host, host, w.Host)
		}
		return nil
	}
	return fmt.Errorf("the token %q is %s: a backup needs an agent token for host %q (an admin creates one: costor token create --role agent --host %s)", w.Name, tokenDesc(w), host, host)
}

// remoteCredentials: the admin's recovery key reads any host; otherwise
// the organisation key and this host's key pair read (and write) this
// host's backups.
func (e *env) remoteCredentials(ro remoteOpen) (repo.Credentials, error) {
	var creds repo.Credentials
	if f := e.c.String("org-key"); f != "" {
		org, err := readOrgKey(f)
		if err != nil {
			return creds, err
		}
		creds.Org = org
	}
	if f := e.c.String("recovery-key"); f != "" && ro.backupHost == "" {
		rec, err := e.loadRecoveryKey(f, false)
		if err != nil {
			return creds, err
		}
		creds.Recovery = &rec
	}
	if creds.Org == nil && creds.Recovery == nil {
		if ro.backupHost != "" {
			return creds, errors.New("a backup to a server needs the organisation key: give --org-key FILE (or COSTOR_ORG_KEY_FILE), made by `costor key init`")
		}
		return creds, errors.New("a server repository is read with the organisation key and this host's key (--org-key FILE), or by an admin with --recovery-key FILE")
	}
	creds.Host = ro.hostKey
	if creds.Host == nil {
		hk, err := e.hostKeyForReading()
		if err != nil {
			return creds, err
		}
		creds.Host = hk
	}
	return creds, nil
}

// hostKeyForReading loads --host-key, or the default host key if this
// machine has one; reading never creates a key.
func (e *env) hostKeyForReading() (*crypto.HostKey, error) {
	if f := e.c.String("host-key"); f != "" {
		hk, err := readHostKey(f)
		if errors.Is(err, os.ErrNotExist) {
			// A machine that has not backed up yet has no key: it can
			// still list (nothing of its own) and an admin can still read.
			return nil, nil
		}
		return hk, err
	}
	f, err := defaultHostKeyFile()
	if err != nil {
		return nil, err
	}
	hk, err := readHostKey(f)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return hk, err
}

func (e *env) hostKeyFileDesc() string {
	if f := e.c.String("host-key"); f != "" {
		return f
	}
	if f, err := defaultHostKeyFile(); err == nil {
		return f
	}
	return "(default)"
}

func readOrgKey(f string) (*crypto.OrgKey, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("read organisation key: %w", err)
	}
	org, err := crypto.DecodeOrgKey(data)
	if err != nil {
		return nil, fmt.Errorf("organisation key %s: %w", f, err)
	}
	return &org, nil
}

// lockWait: a backup waits as long as it takes (a scheduled backup that
// gives up is a missed backup); everything else gives up after 10 minutes.
func lockWait(command string) time.Duration {
	if command == "backup" {
		return 24 * time.Hour
	}
	return 10 * time.Minute
}

// tokenIDArg accepts a token ID, or a whole token (costor_<id>_<secret>),
// of which only the ID is used.
func tokenIDArg(s string) (string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "costor_"); ok {
		s, _, _ = strings.Cut(rest, "_")
	}
	if len(s) != 16 {
		return "", fmt.Errorf("token ID %q: give the 16 hex digits shown by `costor token list`", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("token ID %q: give the 16 hex digits shown by `costor token list`", s)
	}
	return strings.ToLower(s), nil
}
