// Package monitoring runs the tests of the sample's operations kit
// (samples/vmcontroller/deploy/monitoring) under `go test ./...` of rein's
// module. They live in the module test/monitoring/queries, which needs
// Prometheus's own PromQL parser and rule-file reader: in rein's go.mod,
// github.com/prometheus/prometheus would raise the Go version and the
// client libraries every user of rein builds with, for a test. go test
// ./... does not enter a nested module, so this test runs it.
package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestOperationsKit(t *testing.T) {
	args := []string{"test", "-count=1", "-timeout=10m"}
	if raceEnabled {
		args = append(args, "-race")
	}
	if testing.Verbose() {
		args = append(args, "-v")
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, "./...")...)
	cmd.Dir = "queries"
	// The nested module is built with its own go.mod, not a workspace's.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in test/monitoring/queries: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
