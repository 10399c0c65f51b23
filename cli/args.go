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
	var path, flagArgs, positional, tail []string
	flags := app.Flags
	cmds := app.Commands
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			tail = args[i:]
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flagArgs = append(flagArgs, a)
			if takesValue(flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				flagArgs = append(flagArgs, args[i+1])
				i++
			}
		default:
			if sub := findCommand(cmds, a); sub != nil && len(positional) == 0 {
				path = append(path, a)
				// Every leaf command carries the global flags too.
				flags = append(append([]ucli.Flag{}, flags...), sub.Flags...)
				cmds = sub.Subcommands
				continue
			}
			positional = append(positional, a)
		}
	}
	out := append([]string{args[0]}, path...)
	out = append(out, flagArgs...)
	out = append(out, positional...)
	return append(out, tail...)
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
