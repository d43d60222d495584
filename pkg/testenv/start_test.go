package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestStartFailureQuotesTheLogAndLeavesNothing: a kube-apiserver that
// cannot bind its port is started again on new ports, portAttempts times;
// then Start fails with the end of its log (Dir, where the log was, is
// gone) and leaves no process (etcd did start) and no folder.
func TestStartFailureQuotesTheLogAndLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	real, err := findBinDir("")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(filepath.Join(real, "etcd"), filepath.Join(bin, "etcd")); err != nil {
		t.Fatal(err)
	}
	starts := filepath.Join(t.TempDir(), "starts")
	script := "#!/bin/sh\necho start >> " + starts + "\necho 'listen tcp 127.0.0.1:1: bind: address already in use'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "kube-apiserver"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where Start makes Dir

	e, err := Start(Options{BinDir: bin})
	if err == nil {
		_ = e.Stop()
		t.Fatal("Start succeeded with a kube-apiserver that exits")
	}
	t.Logf("Start: %v", err)
	for _, want := range []string{"kube-apiserver exited before it was ready", "bind: address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if log, _ := os.ReadFile(starts); strings.Count(string(log), "start") != portAttempts {
		t.Errorf("kube-apiserver started %d times, want %d (new ports each time)", strings.Count(string(log), "start"), portAttempts)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("Start left %v in %s", left, tmp)
	}
	if runtime.GOOS != "linux" {
		return
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, path := range cmdlines {
		if cmdline, err := os.ReadFile(path); err == nil && strings.Contains(string(cmdline), tmp) {
			t.Errorf("left running: %s", strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}
