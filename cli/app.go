package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/storage/local"
)

// Version is the program version, recorded in snapshots.
const Version = "0.1.0"

// NewApp builds the costor command line.
func NewApp() *ucli.App {
	// urfave/cli claims -v for --version; the contract gives -v to --verbose.
	ucli.VersionFlag = &ucli.BoolFlag{Name: "version", Usage: "print the version"}
	app := &ucli.App{
		Name:                 "costor",
		Usage:                "encrypted, deduplicating backups you can restore by opening a folder",
		Version:              Version,
		EnableBashCompletion: true,
		ExitErrHandler:       func(*ucli.Context, error) {}, // main prints and exits
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "repo", Aliases: []string{"r"}, EnvVars: []string{"COSTOR_REPO"}, Usage: "repository: a local directory (default: your own, under $XDG_DATA_HOME/costor), or https://HOST:PORT for a server"},
			&ucli.StringFlag{Name: "password-file", EnvVars: []string{"COSTOR_PASSWORD_FILE"}, Usage: "read the repository password from `FILE` (or set COSTOR_PASSWORD)"},
			&ucli.StringFlag{Name: "token-file", EnvVars: []string{"COSTOR_TOKEN_FILE"}, Usage: "read the token for a server from `FILE` (or set COSTOR_TOKEN to the token itself)"},
			&ucli.StringFlag{Name: "cacert", EnvVars: []string{"COSTOR_CACERT"}, Usage: "trust the server whose certificate is `FILE` (PEM: the server's DATA/tls/cert.pem)"},
			&ucli.StringFlag{Name: "tls-fingerprint", Usage: "trust the server whose certificate has this `SHA256:…` fingerprint (printed by `costor server` at start)"},
			&ucli.StringFlag{Name: "org-key", EnvVars: []string{"COSTOR_ORG_KEY_FILE"}, Usage: "organisation key `FILE` (from `costor key init`): needed to back up to or read from a server"},
			&ucli.StringFlag{Name: "host-key", EnvVars: []string{"COSTOR_HOST_KEY_FILE"}, Usage: "this host's key pair `FILE` (default: under your config directory, created on first use)"},
			&ucli.StringFlag{Name: "recovery-key", EnvVars: []string{"COSTOR_RECOVERY_KEY_FILE"}, Usage: "admin recovery key `FILE` (unlocked with the password): read any host's snapshots"},
			&ucli.BoolFlag{Name: "json", Usage: "machine-readable output on stdout"},
			&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "less on stderr"},
			&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "more on stderr"},
		},
		Commands: []*ucli.Command{
			initCommand(), keyCommand(), backupCommand(), snapshotsCommand(), lsCommand(),
			diffCommand(), dumpCommand(), restoreCommand(), checkCommand(), repairCommand(), pruneCommand(), versionsCommand(), mountCommand(), forgetCommand(),
			serverCommand(), tokenCommand(), auditCommand(),
		},
	}
	withGlobalFlags(app.Flags, app.Commands)
	return app
}

// env is what every command gets from the global flags.
type env struct {
	c      *ucli.Context
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// server is the connection to a site server, once one is made.
	server *serverConn
}

func newEnv(c *ucli.Context) *env {
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	if c.Bool("quiet") {
		level = slog.LevelError
	}
	return &env{
		c: c, stdout: c.App.Writer, stderr: c.App.ErrWriter,
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
}

// info prints a human message on stderr unless --quiet.
func (e *env) info(format string, args ...any) {
	if !e.c.Bool("quiet") {
		fmt.Fprintf(e.stderr, format+"\n", args...)
	}
}

// repoLocation returns the local repository directory and whether it is
// the user's embedded default. A server (https://…) is not a directory:
// commands that work on one check remoteURL first.
func (e *env) repoLocation() (string, bool, error) {
	loc := e.c.String("repo")
	if u, remote, err := remoteURL(loc); err != nil {
		return "", false, err
	} else if remote {
		return "", false, fmt.Errorf("repository %s is a server: this command works on a local repository only (a server creates, checks and repairs its own repository)", u)
	}
	if loc != "" {
		abs, err := filepath.Abs(loc)
		return abs, false, err
	}
	dir, err := dataDir()
	if err != nil {
		return "", false, err
	}
	return filepath.Join(dir, "costor"), true, nil
}

func dataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find your home directory for the default repository: %w (give --repo)", err)
	}
	return filepath.Join(home, ".local", "share"), nil
}

func configDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find your config directory: %w", err)
	}
	return filepath.Join(d, "costor"), nil
}

// defaultPasswordFile is where the embedded default repository's generated
// password lives.
func defaultPasswordFile() (string, error) {
	d, err := configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "default-repository.key"), nil
}

// password finds the password: flag or env file, COSTOR_PASSWORD, the
// default repository's generated key, or a prompt on a terminal.
// newSecretPassword reads a password that protects something new (a
// repository, a recovery key): on a terminal it is asked twice, because a
// typo found during a disaster is a lost backup.
func (e *env) newSecretPassword(prompt string) ([]byte, error) {
	pw, err := e.password(false, prompt)
	if err != nil || e.c.String("password-file") != "" || os.Getenv("COSTOR_PASSWORD") != "" {
		return pw, err
	}
	again, err := e.password(false, "again: ")
	if err != nil {
		return nil, err
	}
	if string(again) != string(pw) {
		return nil, errors.New("the two passwords differ: nothing was created")
	}
	return pw, nil
}

func (e *env) password(isDefault bool, prompt string) ([]byte, error) {
	if f := e.c.String("password-file"); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			return nil, fmt.Errorf("password file %s is empty", f)
		}
		return []byte(pw), nil
	}
	if pw, ok := os.LookupEnv("COSTOR_PASSWORD"); ok && pw != "" {
		return []byte(pw), nil
	}
	if isDefault {
		f, err := defaultPasswordFile()
		if err != nil {
			return nil, err
		}
		if data, err := os.ReadFile(f); err == nil {
			return []byte(strings.TrimSpace(string(data))), nil
		}
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(e.stderr, prompt)
		pw, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		return pw, nil
	}
	return nil, errors.New("a password is required: give --password-file, COSTOR_PASSWORD_FILE or COSTOR_PASSWORD")
}

// openOptions builds repo.Options for a local directory.
func (e *env) openOptions(dir, command string, create bool) (repo.Options, error) {
	var st *local.Storage
	var err error
	if create {
		st, err = local.Create(dir)
	} else {
		st, err = local.Open(dir)
	}
	if err != nil {
		return repo.Options{}, err
	}
	// A long restore or check --read-data holds the repository for hours.
	return repo.Options{
		Storage: st, IndexDir: filepath.Join(dir, "index"), Logger: e.log, Command: command, LockWait: lockWait(command),
		OnWait: func(holder string) {
			e.info("waiting for the repository, held by %s (Ctrl-C to stop)", holder)
		},
	}, nil
}

// openRepo opens the repository named by the flags. With --recovery-key it
// opens read-only with the admin's recovery key.
func (e *env) openRepo(ctx context.Context, command string) (*repo.Repository, error) {
	return e.openRepoWithHostKey(ctx, command, nil)
}

// openRepoWithHostKey opens the repository with this host's key pair as an
// extra credential (a backup seals its trees with a key derived from it).
// A server repository (--repo https://…) is opened through its client.
func (e *env) openRepoWithHostKey(ctx context.Context, command string, hostKey *crypto.HostKey) (*repo.Repository, error) {
	if u, remote, err := remoteURL(e.c.String("repo")); err != nil {
		return nil, err
	} else if remote {
		r, _, err := e.openRemote(ctx, u, remoteOpen{command: command, purpose: purposeClient, hostKey: hostKey})
		return r, err
	}
	dir, isDefault, err := e.repoLocation()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if isDefault {
			return nil, fmt.Errorf("your default repository %s does not exist yet: it is created by your first `costor backup`", dir)
		}
		return nil, fmt.Errorf("repository %s does not exist (create it with `costor init --repo %s`)", dir, dir)
	}
	opts, err := e.openOptions(dir, command, false)
	if err != nil {
		return nil, err
	}
	creds, err := e.credentials(isDefault)
	if err != nil {
		return nil, err
	}
	if hostKey != nil {
		creds.Host = hostKey
	}
	r, err := repo.Open(ctx, opts, creds)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (e *env) credentials(isDefault bool) (repo.Credentials, error) {
	var creds repo.Credentials
	if f := e.c.String("recovery-key"); f != "" {
		rec, err := e.loadRecoveryKey(f, isDefault)
		if err != nil {
			return creds, err
		}
		creds.Recovery = &rec
	} else {
		pw, err := e.password(isDefault, "repository password: ")
		if err != nil {
			return creds, err
		}
		creds.Password = pw
	}
	if f := e.c.String("host-key"); f != "" {
		hk, err := readHostKey(f)
		if err != nil {
			return creds, err
		}
		creds.Host = hk
	}
	return creds, nil
}

func (e *env) loadRecoveryKey(f string, isDefault bool) (crypto.PrivateKey, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		return crypto.PrivateKey{}, fmt.Errorf("read recovery key: %w", err)
	}
	pw, err := e.password(isDefault, "recovery key password: ")
	if err != nil {
		return crypto.PrivateKey{}, err
	}
	rk, err := crypto.DecodeRecoveryKey(data, pw)
	if err != nil {
		return crypto.PrivateKey{}, fmt.Errorf("recovery key %s: %w", f, err)
	}
	return rk.Private, nil
}

func readHostKey(f string) (*crypto.HostKey, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	hk, err := crypto.DecodeHostKey(data)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", f, err)
	}
	return &hk, nil
}

// defaultHostKeyFile is where this machine's own host key lives.
func defaultHostKeyFile() (string, error) {
	d, err := configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "host.key"), nil
}

// hostKeyForBackup loads --host-key, or this machine's default host key
// file, creating either on first use. A new --host-key file is bound to
// host (--host or the hostname); the default file to the machine's own
// hostname, so a local backup under another --host does not use it.
func (e *env) hostKeyForBackup(host string) (*crypto.HostKey, error) {
	f := e.c.String("host-key")
	if f == "" {
		var err error
		if f, err = defaultHostKeyFile(); err != nil {
			return nil, err
		}
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("find this machine's hostname for its host key: %w", err)
		}
	}
	if hk, err := readHostKey(f); err == nil {
		return hk, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return createHostKey(f, host)
}

// createHostKey makes a new host key pair for host in the file f (0600,
// crash-safe, never overwriting one).
func createHostKey(f, host string) (*crypto.HostKey, error) {
	priv, _, err := crypto.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	hk := crypto.HostKey{Version: 1, Host: host, Private: priv}
	data, err := crypto.EncodeHostKey(hk)
	if err != nil {
		return nil, err
	}
	if err := writeSecretFile(f, data); err != nil {
		// Another first backup made it a moment ago: use that one.
		if existing, rerr := readHostKey(f); rerr == nil {
			return existing, nil
		}
		return nil, err
	}
	return &hk, nil
}

// writeSecretFile writes a key file with mode 0600, crash-safely, and
// refuses to overwrite an existing one: a key is never silently replaced.
func writeSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-key-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link fails if path exists: no key file is ever overwritten.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists: refusing to overwrite a key file", path)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// generatePassword makes the embedded default repository's password.
func generatePassword() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func hostname(c *ucli.Context) (string, error) {
	if h := c.String("host"); h != "" {
		return h, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("find this machine's hostname: %w (give --host)", err)
	}
	return h, nil
}
