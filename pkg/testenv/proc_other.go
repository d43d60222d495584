//go:build !unix

package testenv

import (
	"os"
	"syscall"
)

// Without Unix signals there is no graceful stop to ask for: Stop kills.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Kill() }

func kill(p *os.Process) error { return p.Kill() }
