// Command costor backs up, browses and restores files. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/costor/costor/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args)
	stop()
	if err != nil {
		msg := err.Error()
		if errors.Is(err, context.Canceled) {
			msg = "interrupted"
		}
		// One line: scripts grep it, people read it.
		fmt.Fprintln(os.Stderr, "costor: "+strings.ReplaceAll(msg, "\n", "; "))
	}
	os.Exit(cli.ExitCode(err))
}
