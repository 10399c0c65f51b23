//go:build !unix

package cli

import "os/exec"

func killGroupOnCancel(cmd *exec.Cmd) {}
