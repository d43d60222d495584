//go:build unix && !linux

package testenv

import "syscall"

// sysProcAttr puts the process in a group of its own (see terminate).
// There is no parent-death signal here: a test binary that dies without
// calling Stop leaves the control plane running.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
