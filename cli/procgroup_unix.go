//go:build unix

package cli

import (
	"os/exec"
	"syscall"
	"time"
)

// killGroupOnCancel runs cmd in a process group of its own and, when its
// context ends (Ctrl-C), kills the whole group: a hook `sh -c '…; sleep'`
// or a dump pipeline must not outlive costor.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
}
