package cli

import (
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
)

func initCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "init",
		Usage: "create a local repository",
		Description: "Creates a repository in --repo (or your default one) protected by the password.\n" +
			"With --org-key and --recovery-key it uses your organisation's secret and the admin's recovery key.",
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			dir, isDefault, err := e.repoLocation()
			if err != nil {
				return err
			}
			var io repo.InitOptions
			if f := c.String("org-key"); f != "" {
				data, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("read organisation key: %w", err)
				}
				org, err := crypto.DecodeOrgKey(data)
				if err != nil {
					return fmt.Errorf("organisation key %s: %w", f, err)
				}
				rf := c.String("recovery-key")
				if rf == "" {
					return fmt.Errorf("--org-key needs --recovery-key too: the repository key file holds the recovery key")
				}
				rec, err := e.loadRecoveryKey(rf, false)
				if err != nil {
					return err
				}
				io.Org, io.Recovery = &org, &rec
			}
			pw, err := e.newPassword(isDefault)
			if err != nil {
				return err
			}
			r, err := initRepo(c, e, dir, pw, io)
			if err != nil {
				return err
			}
			defer r.Close()
			e.info("created costor repository %s at %s", r.Config().ID[:8], dir)
			return nil
		},
	}
}

// newPassword asks for the password of a new repository; for the default
// repository without one given, it generates and stores one.
func (e *env) newPassword(isDefault bool) ([]byte, error) {
	if e.c.String("password-file") != "" || os.Getenv("COSTOR_PASSWORD") != "" || !isDefault {
		return e.newSecretPassword("new repository password: ")
	}
	return e.defaultRepoPassword()
}

// defaultRepoPassword generates the embedded default repository's key and
// keeps it under the config directory.
func (e *env) defaultRepoPassword() ([]byte, error) {
	f, err := defaultPasswordFile()
	if err != nil {
		return nil, err
	}
	if data, err := os.ReadFile(f); err == nil {
		return []byte(string(trimNL(data))), nil
	}
	pw, err := generatePassword()
	if err != nil {
		return nil, err
	}
	if err := writeSecretFile(f, []byte(pw+"\n")); err != nil {
		return nil, err
	}
	e.info("costor: generated the key of your default repository and saved it in %s.\n"+
		"        Keep a copy of that file somewhere else (a password manager, a USB stick):\n"+
		"        without it your backups cannot be read.", f)
	return []byte(pw), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func initRepo(c *ucli.Context, e *env, dir string, pw []byte, io repo.InitOptions) (*repo.Repository, error) {
	opts, err := e.openOptions(dir, "init", true)
	if err != nil {
		return nil, err
	}
	if os.Getenv("COSTOR_TEST_FAST_KDF") == "1" {
		// Only for the test suite: the real KDF costs 64 MiB and ~0.5 s per
		// open. Said loudly, since it makes the password easy to guess.
		e.info("warning: COSTOR_TEST_FAST_KDF=1: this repository's password is protected by a weak test KDF; never use it for real data")
		io.KDF = &crypto.TestKDFParams
	}
	return repo.Init(c.Context, opts, pw, io)
}
