package testbin

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRealBuildFromWarmCache builds kube-apiserver and etcd for real into a
// temporary folder and runs them, but only when Go's build cache already
// holds every package they are made of (after `make testbin` or a run of
// rein-testbin with the same pins): then the build is mostly linking, a
// minute or two. A cold build takes 15-20 minutes on 2 cores, too long for
// `go test ./...`, so then the test says so and skips.
func TestRealBuildFromWarmCache(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kube-apiserver and etcd")
	}
	m := pinned(t)
	dir := t.TempDir()
	moduleDir := filepath.Join(dir, ModuleDir)
	if err := m.Write(moduleDir); err != nil {
		t.Fatal(err)
	}
	// `go list` reports a package Stale when the build cache lacks its
	// compiled form for these flags. Main packages are small: they may be.
	var out, errOut bytes.Buffer
	begin := time.Now()
	list := Cmd{Dir: moduleDir, Stdout: &out, Stderr: &errOut, Env: []string{"CGO_ENABLED=0", "GOWORK=off"},
		Args: []string{"go", "list", "-deps", "-trimpath", "-buildvcs=false",
			"-f", "{{if and .Stale (ne .Name \"main\")}}{{.ImportPath}}{{end}}", "./" + Etcd, "./" + KubeAPIServer}}
	if err := Exec(t.Context(), list); err != nil {
		t.Skipf("cannot tell whether Go's build cache holds kube-apiserver's packages: %v\n%s", err, errOut.String())
	}
	stale := strings.Fields(out.String())
	t.Logf("go list: %d packages missing from the build cache (%v)", len(stale), time.Since(begin).Round(time.Millisecond))
	if len(stale) > 0 {
		t.Skipf("Go's build cache lacks %d packages of kube-apiserver and etcd (%s, ...): a cold build takes "+
			"15-20 minutes; run `make testbin` once and this test builds from the cache", len(stale), stale[0])
	}

	res, err := m.Build(t.Context(), BuildOptions{Dir: dir, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Built || Missing(dir) != "" {
		t.Fatalf("build %+v left %q missing", res, Missing(dir))
	}
	t.Logf("built from the warm cache in %v", res.Took.Round(100*time.Millisecond))
	for b, want := range map[string]string{
		KubeAPIServer: "Kubernetes " + m.KubernetesVersion(),
		Etcd:          "etcd Version: " + strings.TrimPrefix(m.EtcdVersion(), "v"),
	} {
		got, err := exec.CommandContext(t.Context(), filepath.Join(dir, b), "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("%s --version: %v\n%s\nwant %q", b, err, got, want)
		}
	}
	// Built once: the second run only checks.
	res, err = m.Build(t.Context(), BuildOptions{Dir: dir})
	if err != nil || res.Built {
		t.Fatalf("second build: %+v, %v", res, err)
	}
}

// testLog writes a build's progress into the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
