package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// runHook runs a --pre-hook or --post-hook command line with sh -c. The
// hook sees COSTOR_HOOK (pre or post) and, for post, COSTOR_BACKUP_STATUS
// (ok or failed); its output goes to our stderr.
func runHook(ctx context.Context, e *env, phase, command, status string) error {
	if strings.TrimSpace(command) == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	killGroupOnCancel(cmd)
	cmd.Stdout, cmd.Stderr = e.stderr, e.stderr
	cmd.Env = append(os.Environ(), "COSTOR_HOOK="+phase)
	if status != "" {
		cmd.Env = append(cmd.Env, "COSTOR_BACKUP_STATUS="+status)
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("--%s-hook %q: %w", phase, command, ctx.Err())
		}
		return fmt.Errorf("--%s-hook %q failed: %w", phase, command, err)
	}
	return nil
}

// hooks runs the pre hook now and returns the function that runs the post
// hook exactly once, whatever happens in between: a paused application
// must always be resumed.
func hooks(ctx context.Context, e *env, pre, post string) (func(failed bool) error, error) {
	done := false
	runPost := func(failed bool) error {
		if done {
			return nil
		}
		done = true
		status := "ok"
		if failed {
			status = "failed"
		}
		// The post hook runs even after Ctrl-C.
		return runHook(context.WithoutCancel(ctx), e, "post", post, status)
	}
	if err := runHook(ctx, e, "pre", pre, ""); err != nil {
		if perr := runPost(true); perr != nil {
			e.info("warning: %v", perr)
		}
		return nil, err
	}
	return runPost, nil
}
