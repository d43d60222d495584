//go:build unix

package testenv

import (
	"os"
	"syscall"
)

// terminate and kill signal the process's group (its pid: sysProcAttr makes
// it a group leader), so that anything it started goes with it. The group
// is signalled only while the process is unreaped (proc.stop checks), so
// its id cannot have been reused.
func terminate(p *os.Process) error { return signalGroup(p, syscall.SIGTERM) }

func kill(p *os.Process) error { return signalGroup(p, syscall.SIGKILL) }

func signalGroup(p *os.Process, sig syscall.Signal) error {
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		// No group (the process left it, or is gone): the process alone.
		return p.Signal(sig)
	}
	return nil
}
