package testlock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// DefaultPorts names the lock of 127.0.0.1:8080 and 127.0.0.1:8081.
const DefaultPorts = "default-ports"

// Lock blocks until this process holds the machine-wide lock name, and
// releases it when t ends.
func Lock(t testing.TB, name string) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "rein-testlock-"+name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("testlock %s: %v", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		t.Fatalf("testlock %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}
