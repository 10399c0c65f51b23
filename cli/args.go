package cli

import (
	"context"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Run builds the app and runs it on args. The contract writes flags after
// positional arguments (`restore SNAP --target DIR`), which urfave/cli v2
// does not parse, so the arguments of each command are put in flags-first
// order before parsing. "--" still ends the flags.
func Run(ctx context.Context, args []string) error {
	app := NewApp()
	return app.RunContext(ctx, permute(app, args))
}

func permute(app *ucli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	flags := app.Flags
	var cmds []*ucli.Command = app.Commands
	for len(rest) > 0 {
		var lead, positional []string
		i := 0
		for i < len(rest) {
			a := rest[i]
			if a == "--" {
				break
			}
			if strings.HasPrefix(a, "-") && a != "-" {
				lead = append(lead, a)
				if takesValue(flags, a) && !strings.Contains(a, "=") && i+1 < len(rest) {
					lead = append(lead, rest[i+1])
					i++
				}
				i++
				continue
			}
			if sub := findCommand(cmds, a); sub != nil && len(positional) == 0 {
				break
			}
			positional = append(positional, a)
			i++
		}
		out = append(out, lead...)
		out = append(out, positional...)
		rest = rest[i:]
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			out = append(out, rest...)
			break
		}
		sub := findCommand(cmds, rest[0])
		out = append(out, rest[0])
		rest = rest[1:]
		flags, cmds = sub.Flags, sub.Subcommands
	}
	return out
}

func findCommand(cmds []*ucli.Command, name string) *ucli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether flag arg (like "--target" or "-t") expects a
// value in the next argument.
func takesValue(flags []ucli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if df, ok := f.(ucli.DocGenerationFlag); ok {
				return df.TakesValue()
			}
			return true
		}
	}
	return false
}

// withGlobalFlags gives every command the global flags too, so that
// `costor snapshots --json` works as well as `costor --json snapshots`.
func withGlobalFlags(global []ucli.Flag, cmds []*ucli.Command) {
	for _, c := range cmds {
		if len(c.Subcommands) > 0 {
			withGlobalFlags(global, c.Subcommands)
			continue
		}
		have := map[string]bool{}
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				have[n] = true
			}
		}
		for _, g := range global {
			if !have[g.Names()[0]] {
				c.Flags = append(c.Flags, g)
			}
		}
	}
}
