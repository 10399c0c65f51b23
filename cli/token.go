package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/server/api"
)

func tokenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "token",
		Usage: "manage a server's tokens (admin): create, list, revoke",
		Description: "Talks to the server given by --repo https://HOST:PORT with an admin token (--token-file)\n" +
			"and its certificate (--cacert or --tls-fingerprint). The server's first admin token is DATA/admin.token.",
		Subcommands: []*ucli.Command{
			{
				Name:  "create",
				Usage: "create a token; prints its secret alone on stdout (shown this once)",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "role", Required: true, Usage: "`ROLE`: admin, agent (one host, append-only), reader (one host, or all), peer (replication)"},
					&ucli.StringFlag{Name: "host", Usage: "bind the token to `HOST` (required for agent; for reader, omit to read every host)"},
					&ucli.StringFlag{Name: "name", Usage: "a `NAME` for the audit log (default: chosen by the server)"},
				},
				Action: runTokenCreate,
			},
			{
				Name:   "list",
				Usage:  "list tokens (never their secrets)",
				Action: runTokenList,
			},
			{
				Name:      "revoke",
				Usage:     "revoke tokens: every later request with them is refused",
				ArgsUsage: "ID…",
				Action:    runTokenRevoke,
			},
		},
	}
}

// tokenRequest checks a token request before it is sent, so that a typo is
// named here rather than as a bare 400.
func tokenRequest(role, host, name string) (api.TokenRequest, error) {
	req := api.TokenRequest{Role: role, Host: host, Name: name}
	switch role {
	case api.RoleAgent:
		if host == "" {
			return req, errors.New("token create --role agent: an agent token is bound to one host: give --host HOST")
		}
	case api.RoleReader:
	case api.RoleAdmin, api.RolePeer:
		if host != "" {
			return req, fmt.Errorf("token create --role %s: --host applies to agent and reader tokens only", role)
		}
	default:
		return req, fmt.Errorf("token create --role %q: give admin, agent, reader or peer", role)
	}
	return req, nil
}

func runTokenCreate(c *ucli.Context) error {
	e := newEnv(c)
	req, err := tokenRequest(c.String("role"), c.String("host"), c.String("name"))
	if err != nil {
		return err
	}
	s, err := e.serverForAdmin(c.Context, "token create")
	if err != nil {
		return err
	}
	defer e.closeServer()
	created, err := s.client.CreateToken(c.Context, req)
	if err != nil {
		return err
	}
	if jsonOutput(c) {
		return json.NewEncoder(e.stdout).Encode(created)
	}
	bound := "every host"
	if created.Host != "" {
		bound = "host " + created.Host
	}
	e.info("created %s token %s (%s) for %s; its secret is printed once, below", created.Role, created.ID, created.Name, bound)
	_, err = fmt.Fprintln(e.stdout, created.Secret)
	return err
}

func runTokenList(c *ucli.Context) error {
	e := newEnv(c)
	if c.NArg() > 0 {
		return errors.New("token list takes no arguments")
	}
	s, err := e.serverForAdmin(c.Context, "token list")
	if err != nil {
		return err
	}
	defer e.closeServer()
	tokens, err := s.client.ListTokens(c.Context)
	if err != nil {
		return err
	}
	if jsonOutput(c) {
		if tokens == nil {
			tokens = []api.Token{}
		}
		return json.NewEncoder(e.stdout).Encode(tokens)
	}
	return printTokens(e.stdout, tokens)
}

func printTokens(w io.Writer, tokens []api.Token) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tName\tRole\tHost\tCreated\tRevoked")
	for _, t := range tokens {
		host := t.Host
		if host == "" {
			host = "-"
			if t.Role == api.RoleReader {
				host = "(all)"
			}
		}
		revoked := "-"
		if t.Revoked != nil {
			revoked = t.Revoked.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, displayPath(t.Name), t.Role, displayPath(host),
			t.Created.Local().Format(time.DateTime), revoked)
	}
	return tw.Flush()
}

func runTokenRevoke(c *ucli.Context) error {
	e := newEnv(c)
	if c.NArg() == 0 {
		return errors.New("token revoke: give the ID of the token to revoke (see `costor token list`)")
	}
	var ids []string
	for _, a := range c.Args().Slice() {
		tid, err := tokenIDArg(a)
		if err != nil {
			return err
		}
		ids = append(ids, tid)
	}
	s, err := e.serverForAdmin(c.Context, "token revoke")
	if err != nil {
		return err
	}
	defer e.closeServer()
	for i, tid := range ids {
		if err := s.client.RevokeToken(c.Context, tid); err != nil {
			return fmt.Errorf("%w (%d of %d tokens revoked before)", err, i, len(ids))
		}
		e.info("revoked token %s", tid)
	}
	return nil
}
