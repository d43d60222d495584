// Package readme runs the README's "Generate a controller for your CRD"
// section as a user would: its shell blocks in bash, its file blocks
// written where the README says, in a fresh folder outside this
// repository, then the replica it builds against a real apiserver. The
// README marks each block with an HTML comment the renderer hides:
//
//	<!-- readme-test: run -->         a shell block, run as is
//	<!-- readme-test: file PATH -->   a file to write, as is
//	<!-- readme-test: replica -->     the shell block that starts the replica
//	<!-- readme-test: skip (why) -->  a block this machine cannot run
//
// Changing a line of the section changes what this test runs.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/internal/testlock"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// block is one marked code block of the README.
type block struct {
	kind string // run, file, replica, skip
	arg  string // the file's path for "file"
	body string
	line int
}

var marker = regexp.MustCompile(`^<!-- readme-test: (run|file|replica|skip)\s*(.*?)\s*-->$`)

// section returns the marked blocks of the README section titled title.
func section(t *testing.T, readme, title string) []block {
	t.Helper()
	var blocks []block
	var pending *block
	inSection, inCode := false, false
	var body strings.Builder
	sc := bufio.NewScanner(strings.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case inCode && line == "```":
			inCode = false
			if pending != nil {
				pending.body = body.String()
				blocks = append(blocks, *pending)
				pending = nil
			}
		case inCode:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			inSection = line == "## "+title
		case !inSection:
		case marker.MatchString(line):
			m := marker.FindStringSubmatch(line)
			pending = &block{kind: m[1], arg: m[2], line: n}
		case strings.HasPrefix(line, "```"):
			inCode = true
			body.Reset()
			if pending == nil {
				t.Fatalf("README.md:%d: a code block in %q without a readme-test marker: mark it (run, file PATH, replica or skip)", n, title)
			}
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("README.md has no marked blocks in section %q", title)
	}
	return blocks
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// TestReadmeGenerateSection runs the README's path from an empty folder to
// a replica whose handler writes a status, and that releases its Lease on
// SIGTERM.
func TestReadmeGenerateSection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module and runs it")
	}
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := section(t, string(readme), "Generate a controller for your CRD")
	// The replica serves on the default ports, as the README runs it.
	testlock.Lock(t, testlock.DefaultPorts)

	env, userEnv := userMachine(t, root)
	work := t.TempDir()

	cwd := work
	var replica *exec.Cmd
	var replicaLog syncBuffer
	for _, b := range blocks {
		switch b.kind {
		case "skip":
			t.Logf("README.md:%d: skipped: %s", b.line, strings.TrimSpace(b.body))
		case "file":
			path := filepath.Join(cwd, filepath.FromSlash(b.arg))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(b.body), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("gofmt", "-l", path).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("README.md:%d: %s is not gofmt-clean: %s %v", b.line, b.arg, out, err)
			}
		case "run":
			cwd = runBlock(t, b, cwd, userEnv)
		case "replica":
			// All lines but the last run to the end; the last starts the
			// replica, which runs until it is told to stop.
			lines := strings.Split(strings.TrimSpace(b.body), "\n")
			cwd = runBlock(t, block{kind: "run", body: strings.Join(lines[:len(lines)-1], "\n"), line: b.line}, cwd, userEnv)
			if err := env.InstallCRDs(filepath.Join(cwd, "config", "crd")); err != nil {
				t.Fatalf("the CRDs rein-gen wrote: %v", err)
			}
			replica = exec.Command("bash", "-c", "exec "+lines[len(lines)-1])
			replica.Dir, replica.Env = cwd, userEnv
			replica.Stdout, replica.Stderr = &replicaLog, &replicaLog
			if err := replica.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if replica == nil {
		t.Fatal("the README section starts no replica")
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = replica.Process.Kill()
			_ = replica.Wait()
		}
		if t.Failed() {
			t.Logf("replica log:\n%s", replicaLog.String())
		}
	}()

	// The handler the README shows marks a new Ship as seen.
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ships := dynamic.NewForConfigOrDie(env.Config()).Resource(schema.GroupVersionResource{Group: "fleet.example.com", Version: "v1", Resource: "ships"}).Namespace("default")
	ship := func(name string, crew int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "fleet.example.com/v1", "kind": "Ship",
			"metadata": map[string]any{"name": name}, "spec": map[string]any{"crew": crew},
		}}
	}
	if _, err := ships.Create(ctx, ship("bounty", 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("a Ship with crew 0: %v; want the CRD's schema (Minimum=1) to refuse it", err)
	}
	created, err := ships.Create(ctx, ship("endeavour", 80), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := ships.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=endeavour", ResourceVersion: created.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for ev := range w.ResultChan() {
		if ev.Type == watch.Modified {
			u := ev.Object.(*unstructured.Unstructured)
			if s, _, _ := unstructured.NestedBool(u.Object, "status", "seen"); s {
				seen = true
				break
			}
		}
	}
	w.Stop()
	if !seen {
		t.Fatalf("the handler did not mark the Ship as seen: %v", ctx.Err())
	}
	// /metrics, where the README says it is, serves the engine's metrics
	// with no registry wired by hand, and the election's.
	metrics := httpGet(t, "http://127.0.0.1:8080/metrics")
	for _, want := range []string{
		`rein_handler_executions_total{controller="ships.fleet.example.com",handler="see",result="success"}`,
		`workqueue_adds_total{name="ships.fleet.example.com"}`,
		`rein_cache_objects{group="fleet.example.com",kind="Ship",version="v1"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if !strings.Contains(metrics, "rein_leader") {
		t.Errorf("/metrics has no election metrics (rein_leader_*)")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if body := httpGet(t, "http://127.0.0.1:8081"+path); strings.TrimSpace(body) != "ok" {
			t.Errorf("%s: %q, want ok", path, body)
		}
	}
	if log := replicaLog.String(); !strings.Contains(log, "lease namespace") || !strings.Contains(log, "lease=default/shipyard") {
		t.Errorf("the replica did not say which lease namespace it chose (want \"default\": the kubeconfig's context has none)")
	}

	// SIGTERM: the replica drains, releases the Lease and exits 0.
	if err := replica.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := replica.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0", err)
	}
	cs := kubernetes.NewForConfigOrDie(env.Config())
	lease, err := cs.CoordinationV1().Leases("default").Get(ctx, "shipyard", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Lease the replica held: %v", err)
	}
	if holder := holderOf(lease); holder != "" {
		t.Fatalf("after SIGTERM the Lease is still held by %q", holder)
	}
}

// userMachine starts a control plane (stopped at the end of the test) and
// makes the user's machine around it: a home with ~/.kube/config for the
// cluster and the checkout in $REIN. It returns the environment commands
// run with.
func userMachine(t *testing.T, root string) (*testenv.Env, []string) {
	t.Helper()
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	home := t.TempDir()
	kubeconfig, err := os.ReadFile(env.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".kube", "config"), kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return env, userEnvironment(home, root)
}

// httpGet returns the body of a 200 answer to url, failing t otherwise.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	return string(body)
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// userEnvironment is this process's environment with HOME and REIN set as
// the README assumes, and nothing of this test's own configuration
// (KUBECONFIG, POD_*) leaking in.
func userEnvironment(home, rein string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "REIN", "KUBECONFIG", "POD_NAME", "POD_NAMESPACE", "GOFLAGS":
			continue
		}
		out = append(out, kv)
	}
	// The user's Go caches are this machine's: the module and build caches
	// keep their places, only HOME moves.
	for _, v := range []string{"GOPATH", "GOMODCACHE", "GOCACHE"} {
		if os.Getenv(v) == "" {
			if val, err := exec.Command("go", "env", v).Output(); err == nil {
				out = append(out, v+"="+strings.TrimSpace(string(val)))
			}
		}
	}
	return append(out, "HOME="+home, "REIN="+rein)
}

// runBlock runs a shell block with bash (-e: the first failing command
// fails it) in cwd and returns the folder it ended in, as the next block
// starts there.
func runBlock(t *testing.T, b block, cwd string, env []string) string {
	t.Helper()
	pwdFile := filepath.Join(t.TempDir(), "pwd")
	script := "set -euo pipefail\n" + b.body + "\npwd > " + pwdFile + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir, cmd.Env = cwd, env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README.md:%d: the block failed after %v: %v\n%s\n%s", b.line, time.Since(start).Round(time.Millisecond), err, b.body, out)
	}
	t.Logf("README.md:%d: ran in %v:\n%s%s", b.line, time.Since(start).Round(time.Millisecond), b.body, out)
	dir, err := os.ReadFile(pwdFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(dir))
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestReadmeReplicaBuilds: the "A replica" program builds and vets in a
// fresh module, as written.
func TestReadmeReplicaBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := section(t, string(readme), "A replica")
	work := t.TempDir()
	env := userEnvironment(t.TempDir(), root)
	runBlock(t, block{body: "go mod init example.com/my-controller\ngo mod edit -require=github.com/rein-k8s/rein@v0.0.0 -replace=github.com/rein-k8s/rein=$REIN"}, work, env)
	for _, b := range blocks {
		if b.kind != "file" {
			t.Fatalf("README.md:%d: the section %q should hold files only", b.line, "A replica")
		}
		if err := os.WriteFile(filepath.Join(work, b.arg), []byte(b.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runBlock(t, block{body: "go mod tidy\ngo vet ./...\ngofmt -l . | (! grep .)"}, work, env)
}
