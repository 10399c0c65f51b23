package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/server"
)

// defaultListen is the server's address when --listen is not given: every
// interface, port 8443 (a site server is there to be reached by the site's
// machines; HTTPS only, so nothing is ever in the clear).
const defaultListen = ":8443"

func serverCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "server",
		Usage: "run a site server (HTTPS, tokens, roles, audit log); it holds no key that decrypts data",
		Description: "Runs in the foreground until Ctrl-C or SIGTERM, logging to stderr; it never prompts.\n" +
			"On first start it writes a self-signed certificate to DIR/tls/cert.pem (what clients pass as\n" +
			"--cacert) and the first admin token to DIR/admin.token (mode 0600). See docs/server.md.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "data", Required: true, Usage: "keep the repository, tokens, audit log and certificate in `DIR`"},
			&ucli.StringFlag{Name: "listen", Value: defaultListen, Usage: "listen on `ADDR` (host:port)"},
			&ucli.StringFlag{Name: "tls-cert", Usage: "serve this certificate `FILE` (PEM) instead of the generated one"},
			&ucli.StringFlag{Name: "tls-key", Usage: "the private key `FILE` (PEM) of --tls-cert"},
		},
		Action: runServer,
	}
}

func runServer(c *ucli.Context) error {
	e := newEnv(c)
	ctx := c.Context
	if c.NArg() > 0 {
		return fmt.Errorf("server takes no arguments (got %q): give --data DIR and --listen ADDR", c.Args().First())
	}
	certFile, keyFile := c.String("tls-cert"), c.String("tls-key")
	if (certFile == "") != (keyFile == "") {
		return errors.New("server: give --tls-cert and --tls-key together, or neither for the generated certificate")
	}
	dataDir, err := filepath.Abs(c.String("data"))
	if err != nil {
		return fmt.Errorf("server --data %s: %w", c.String("data"), err)
	}
	// Relative to where the command was started, whatever the server
	// does with its working directory.
	if certFile != "" {
		if certFile, err = filepath.Abs(certFile); err != nil {
			return err
		}
		if keyFile, err = filepath.Abs(keyFile); err != nil {
			return err
		}
	}
	shownCert := certFile
	if shownCert == "" {
		shownCert = filepath.Join(dataDir, "tls", "cert.pem")
	}
	err = server.Run(ctx, server.Options{
		DataDir: dataDir, Listen: c.String("listen"),
		CertFile: certFile, KeyFile: keyFile,
		Logger: serverLogger(c),
		Ready: func(addr string) {
			announceServer(e, addr, shownCert)
		},
	})
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// Stopped by Ctrl-C or SIGTERM: a clean stop, exit 0.
		err = nil
	}
	// Run's errors say "server: …" themselves.
	return err
}

// serverLogger logs requests and events on stderr: info by default (a
// server's log is read in the journal), less with -q, more with -v.
func serverLogger(c *ucli.Context) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	if c.Bool("quiet") {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// announceServer says, once the port is open, how clients trust and reach
// the server. It is printed even with --quiet: without it nobody can pin
// the certificate. (The server logs the first admin token's path itself.)
func announceServer(e *env, addr, certFile string) {
	fmt.Fprintf(e.stderr, "costor server listening on %s; clients use --repo %s\n", addr, clientURL(addr))
	fmt.Fprintf(e.stderr, "certificate: %s (give it to clients as --cacert)\n", certFile)
	if fp, err := server.Fingerprint(certFile); err == nil {
		fmt.Fprintf(e.stderr, "fingerprint: %s (or give clients --tls-fingerprint %s)\n", fp, fp)
	} else {
		fmt.Fprintf(e.stderr, "warning: cannot compute the certificate's fingerprint: %v\n", err)
	}
}

// clientURL is the --repo a client on another machine gives for a server
// listening on addr: an unspecified address (every interface) is shown as
// this machine's name.
func clientURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "https://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "https://" + net.JoinHostPort(host, port)
}
