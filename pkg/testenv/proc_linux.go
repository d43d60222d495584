package testenv

import "syscall"

// sysProcAttr puts the process in a group of its own (see terminate) and
// has the kernel kill it when the test binary dies, however it dies: a
// process must not outlive the tests that started it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
