package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/costor/costor/agent"
)

// runStreamBackup backs up standard input or a command's output as one
// file. A command that fails fails the backup, and no snapshot is written.
func runStreamBackup(c *ucli.Context, e *env) error {
	ctx := c.Context
	if c.Bool("stdin") && c.Bool("stdin-from-command") {
		return errors.New("backup: give --stdin or --stdin-from-command, not both")
	}
	if c.Bool("stdin-from-command") && c.NArg() == 0 {
		return errors.New("backup --stdin-from-command: give the command after --, e.g. -- pg_dump mydb")
	}
	if c.Bool("stdin") && c.NArg() > 0 {
		return errors.New("backup --stdin takes no PATH")
	}
	if c.Bool("stdin") && term.IsTerminal(int(os.Stdin.Fd())) {
		return errors.New("backup --stdin: standard input is a terminal; pipe the data in (e.g. pg_dump mydb | costor backup --stdin --stdin-filename mydb.sql)")
	}
	host, err := hostname(c)
	if err != nil {
		return err
	}
	r, _, opts, err := backupBase(c, e, host)
	if err != nil {
		return err
	}
	defer r.Close()
	runPost, err := hooks(ctx, e, c.String("pre-hook"), c.String("post-hook"))
	if err != nil {
		return err
	}
	defer runPost(true) // on an early return; a no-op once it ran
	// The command starts only now: after the pre hook (which may flush the
	// application it dumps) and once the repository is open, so it never
	// sits blocked on a full pipe while we wait for a lock.
	var (
		src    io.Reader = os.Stdin
		finish func() error
	)
	if c.Bool("stdin-from-command") {
		args := c.Args().Slice()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		killGroupOnCancel(cmd)
		cmd.Stderr = e.stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("backup --stdin-from-command: start %s: %w", args[0], err)
		}
		defer func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}()
		src = out
		finish = func() error {
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("command %q failed (%v): no snapshot written", args[0], err)
			}
			return nil
		}
	}
	var progress *agent.Progress
	stop := func() {}
	if e.showProgress() {
		progress = &agent.Progress{}
		stop = startProgress(e, progress, "backup")
	}
	opts.Method, opts.Progress = "stdin", progress
	res, err := agent.BackupStream(ctx, r, opts, c.String("stdin-filename"), src, finish)
	stop()
	if perr := runPost(err != nil); perr != nil {
		if err == nil {
			err = perr
		} else {
			e.info("warning: %v", perr)
		}
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if res.Stats.Bytes == 0 {
		// A failed producer upstream of a pipe looks exactly like this.
		fmt.Fprintln(e.stderr, "warning: the stream was empty: the snapshot holds an empty file (did the command feeding the pipe fail?)")
	}
	return printBackup(e, res, nil)
}
