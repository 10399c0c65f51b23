package cli

import ucli "github.com/urfave/cli/v2"

func dumpCommand() *ucli.Command { return &ucli.Command{Name: "dump", Usage: "a file's bytes to stdout"} }
