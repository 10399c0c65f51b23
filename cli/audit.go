package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/server/api"
)

func auditCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "audit",
		Usage: "the server's audit log (admin): who, what, when, allowed or refused",
		Description: "The server verifies the log's hash chain as it reads it and fails at the first broken entry.\n" +
			"--since takes a time (RFC 3339, like 2025-01-31T08:00:00Z, or a date 2025-01-31) or an age (24h, 90m, 7d).",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "since", Usage: "only entries at or after `TIME` (RFC 3339, a date, or an age like 24h or 7d)"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			if c.NArg() > 0 {
				return errors.New("audit takes no arguments (use --since TIME)")
			}
			var since time.Time
			if s := c.String("since"); s != "" {
				t, err := parseSince(s, time.Now())
				if err != nil {
					return err
				}
				since = t
			}
			s, err := e.serverForAdmin(c.Context, "audit")
			if err != nil {
				return err
			}
			defer e.closeServer()
			entries, err := s.client.Audit(c.Context, since)
			if err != nil {
				return err
			}
			if jsonOutput(c) {
				if entries == nil {
					entries = []api.AuditEntry{}
				}
				return json.NewEncoder(e.stdout).Encode(entries)
			}
			return printAudit(e.stdout, entries)
		},
	}
}

// parseSince reads --since: an RFC 3339 time, a date (local midnight), or
// an age before now (a Go duration, or whole days like 7d).
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give a time (2025-01-31T08:00:00Z), a date (2025-01-31) or an age (24h, 90m, 7d)", s)
}

func printAudit(w io.Writer, entries []api.AuditEntry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Time\tToken\tHost\tAction\tTarget\tResult")
	for _, a := range entries {
		result := a.Result
		if a.Result == api.ResultRefused && a.Status != 0 {
			result = fmt.Sprintf("%s (%d)", a.Result, a.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Time.Local().Format(time.DateTime),
			displayPath(dash(a.Token)), displayPath(dash(a.Host)), displayPath(a.Action), displayPath(dash(a.Target)), result)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
