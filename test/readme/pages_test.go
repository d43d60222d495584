// Package readme runs the documentation as a user would: the README's
// quickstart and every page of docs/guide, each code block as written, in
// a fresh folder outside this repository, against a real apiserver.
//
// Every fenced code block of README.md and of docs/guide/*.md carries an
// HTML comment (the renderer hides it) that says what to do with it:
//
//	<!-- readme-test: run -->         a shell block, run as is (bash -e)
//	<!-- readme-test: file PATH -->   a file to write at PATH, as is
//	<!-- readme-test: replica -->     a shell block whose last line starts the replica
//	<!-- readme-test: skip (why) -->  a command this machine cannot run, and why
//	<!-- readme-test: output -->      what a command prints: shown, never run
//
// A fenced block without a marker fails the test: a block a user would
// paste is run unless its author says why not. Only fenced blocks are
// seen, so the pages use no indented code blocks.
//
// Blocks run in page order, in one shell session as it were: the folder a
// block ends in is where the next one starts. Go files must be
// gofmt-clean, and a page that wrote any must leave a module that passes
// go vet.
//
// The README's quickstart runs in an empty folder (TestReadme). The
// blocks of docs/guide/00-by-hand.md before its replica block build the
// guide's module, once per test run; that page's replica block runs in a
// copy of it, and so does each later guide page, which continues it
// (TestGuide). A replica block builds the program, the CRDs rein-gen
// wrote into config/crd or deploy/crd are installed (what `kubectl apply
// -f` does), the replica starts with a ~/.kube/config for a fresh
// control plane, and the test waits for its /readyz, runs what the page
// promises (see pageChecks), stops it with SIGTERM and wants exit 0.
//
// Changing a line of a page changes what this test runs.
package readme

import (
	"bufio"
	"context"
	"fmt"
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

	"github.com/rein-k8s/rein/internal/testbin"
	"github.com/rein-k8s/rein/internal/testkit"

	"github.com/rein-k8s/rein/internal/testlock"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// block is one marked code block of a page.
type block struct {
	kind string // run, file, replica, skip, output
	arg  string // the file's path for "file", the reason for "skip"
	body string
	page string // the page's path in the repository
	line int    // of the marker
}

func (b block) where() string {
	if b.line == 0 {
		return b.page + " (the test, after the page's blocks)"
	}
	return fmt.Sprintf("%s:%d", b.page, b.line)
}

var marker = regexp.MustCompile(`^<!-- readme-test: (run|file|replica|skip|output)\s*(.*?)\s*-->$`)

// parsePage returns the marked blocks of the markdown page text, whose
// path in the repository is page, or an error naming the first block
// without a marker or a marker without its argument.
func parsePage(page, text string) ([]block, error) {
	var blocks []block
	var pending *block
	inCode := false
	var body strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case inCode && strings.TrimSpace(line) == "```":
			inCode = false
			if pending != nil {
				pending.body = body.String()
				blocks = append(blocks, *pending)
				pending = nil
			}
		case inCode:
			body.WriteString(line + "\n")
		case marker.MatchString(line):
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: a readme-test marker with no code block after it", page, pending.line)
			}
			m := marker.FindStringSubmatch(line)
			pending = &block{kind: m[1], arg: m[2], page: page, line: n}
			switch {
			case (m[1] == "file" || m[1] == "skip") && m[2] == "":
				return nil, fmt.Errorf("%s:%d: %q needs its argument (file PATH, skip (why))", page, n, line)
			case m[1] != "file" && m[1] != "skip" && m[2] != "":
				return nil, fmt.Errorf("%s:%d: %q takes no argument", page, n, line)
			}
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			inCode = true
			body.Reset()
			if pending == nil {
				return nil, fmt.Errorf("%s:%d: a code block without a readme-test marker: mark it (run, file PATH, replica, skip (why) or output)", page, n)
			}
		}
	}
	if inCode {
		return nil, fmt.Errorf("%s: a code block is not closed", page)
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: a readme-test marker with no code block after it", page, pending.line)
	}
	return blocks, nil
}

// readPage parses the page at path (relative to the repository's root).
func readPage(t *testing.T, path string) []block {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot(), filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parsePage(path, string(text))
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// guidePages returns the paths of docs/guide's pages, in name order.
func guidePages(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot(), "docs", "guide", "*.md"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no pages in docs/guide: %v", err)
	}
	var pages []string
	for _, p := range paths {
		pages = append(pages, "docs/guide/"+filepath.Base(p))
	}
	return pages
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// byHandPage builds the module every later page of the guide continues.
const byHandPage = "docs/guide/00-by-hand.md"

// The guide's module: byHandPage's blocks before its replica block, run
// once per test run in a folder that TestMain removes.
var guideModule struct {
	once sync.Once
	root string // the folder the blocks started in
	cwd  string // the folder they ended in, under root
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guideModule.root != "" {
		_ = os.RemoveAll(guideModule.root)
	}
	os.Exit(code)
}

// guideModuleCopy makes a copy of the guide's module in a new temporary
// folder (building the module first, once) and returns the folder
// byHandPage's blocks ended in, in the copy.
func guideModuleCopy(t *testing.T) string {
	t.Helper()
	var blocks []block
	for _, b := range readPage(t, byHandPage) {
		if b.kind == "replica" {
			break
		}
		blocks = append(blocks, b)
	}
	guideModule.once.Do(func() {
		guideModule.root, guideModule.err = os.MkdirTemp("", "rein-readme-")
		if guideModule.err != nil {
			return
		}
		home := filepath.Join(guideModule.root, "home")
		work := filepath.Join(guideModule.root, "work")
		for _, dir := range []string{home, work} {
			if guideModule.err = os.Mkdir(dir, 0o755); guideModule.err != nil {
				return
			}
		}
		env := userEnvironment(home, repoRoot())
		start := time.Now()
		guideModule.cwd, guideModule.err = runBlocks(t, blocks, work, env)
		if guideModule.err == nil {
			t.Logf("the guide's module, built once in %v", time.Since(start).Round(time.Second))
		}
	})
	if guideModule.err != nil {
		t.Fatalf("%s: %v", byHandPage, guideModule.err)
	}
	dst := t.TempDir()
	work := filepath.Join(guideModule.root, "work")
	if out, err := exec.Command("cp", "-a", work+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("copying the guide's module: %v\n%s", err, out)
	}
	rel, err := filepath.Rel(work, guideModule.cwd)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dst, rel)
}

// runBlocks runs the run and file blocks of blocks in order from cwd
// (skip and output blocks are passed over) and returns the folder they
// ended in. It logs each block to t and returns the first failure.
func runBlocks(t *testing.T, blocks []block, cwd string, env []string) (string, error) {
	for _, b := range blocks {
		switch b.kind {
		case "skip":
			t.Logf("%s: skipped %s", b.where(), b.arg)
		case "output":
		case "file":
			if err := writeFile(b, cwd); err != nil {
				return cwd, err
			}
		case "run":
			var err error
			if cwd, err = runShell(t, b, cwd, env); err != nil {
				return cwd, err
			}
		default:
			return cwd, fmt.Errorf("%s: a %s block cannot run here", b.where(), b.kind)
		}
	}
	return cwd, nil
}

// writeFile writes a file block under cwd; a Go file must be gofmt-clean.
func writeFile(b block, cwd string) error {
	path := filepath.Join(cwd, filepath.FromSlash(b.arg))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(b.body), 0o644); err != nil {
		return err
	}
	if strings.HasSuffix(path, ".go") {
		if out, err := exec.Command("gofmt", "-l", path).CombinedOutput(); err != nil || len(out) > 0 {
			return fmt.Errorf("%s: %s is not gofmt-clean: %s %v", b.where(), b.arg, out, err)
		}
	}
	return nil
}

// runShell runs a shell block with bash (-e: the first failing command
// fails it) in cwd and returns the folder it ended in, where the next
// block starts.
func runShell(t *testing.T, b block, cwd string, env []string) (string, error) {
	pwdFile := filepath.Join(t.TempDir(), "pwd")
	script := "set -euo pipefail\n" + b.body + "\npwd > " + pwdFile + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir, cmd.Env = cwd, env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		return cwd, fmt.Errorf("%s: the block failed after %v: %v\n%s\n%s", b.where(), took, err, b.body, out)
	}
	t.Logf("%s: ran in %v:\n%s%s", b.where(), took, b.body, out)
	dir, err := os.ReadFile(pwdFile)
	if err != nil {
		return cwd, err
	}
	return strings.TrimSpace(string(dir)), nil
}

// pageRun is one page's blocks running, as the checks of its replica see
// them.
type pageRun struct {
	env     *testenv.Env // the control plane; nil on a page with no replica
	cwd     string       // where the replica block ran
	replica *replica
	ctx     context.Context
}

// pageChecks are what a page promises of its replica, beyond being ready
// and exiting 0 on SIGTERM; keyed by the page's path.
type pageChecks struct {
	// before runs after config/crd is installed and before the replica
	// starts: what a cluster provides besides.
	before func(t *testing.T, r *pageRun)
	// ready runs once /readyz answers ok.
	ready func(t *testing.T, r *pageRun)
	// stopped runs after the replica exited 0 on SIGTERM.
	stopped func(t *testing.T, r *pageRun)
}

// runPage runs blocks (of one page) from cwd: run and file blocks as
// runBlocks does, a replica block as the package documentation says, with
// checks. A page that wrote Go files ends with go vet of its module.
func runPage(t *testing.T, blocks []block, cwd string, checks pageChecks) {
	t.Helper()
	home := t.TempDir()
	userEnv := userEnvironment(home, repoRoot())
	var env *testenv.Env
	goDir, page := "", ""
	for _, b := range blocks {
		page = b.page
		switch b.kind {
		case "file":
			if strings.HasSuffix(b.arg, ".go") {
				goDir = cwd
			}
		case "replica":
			if env == nil {
				// The replica serves on the default ports, as the page runs it.
				testlock.Lock(t, testlock.DefaultPorts)
				env = controlPlane(t, home)
			}
			cwd = runReplica(t, b, cwd, userEnv, env, checks)
			continue
		}
		var err error
		if cwd, err = runBlocks(t, []block{b}, cwd, userEnv); err != nil {
			t.Fatal(err)
		}
	}
	if goDir != "" {
		vet := block{kind: "run", body: "go vet ./...\n", page: page}
		if _, err := runShell(t, vet, goDir, userEnv); err != nil {
			t.Fatalf("the Go files of the page do not pass go vet: %v", err)
		}
	}
}

// runReplica runs a replica block: all lines but the last to the end, then
// the last as the replica, with checks around it.
func runReplica(t *testing.T, b block, cwd string, userEnv []string, env *testenv.Env, checks pageChecks) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(b.body), "\n")
	build := b
	build.kind, build.body = "run", strings.Join(lines[:len(lines)-1], "\n")
	cwd, err := runShell(t, build, cwd, userEnv)
	if err != nil {
		t.Fatal(err)
	}
	// rein-gen's CRDs: config/crd by hand, deploy/crd in a scaffolded
	// project.
	for _, crds := range []string{"config/crd", "deploy/crd"} {
		if _, err := os.Stat(filepath.Join(cwd, crds)); err == nil {
			if err := env.InstallCRDs(filepath.Join(cwd, crds)); err != nil {
				t.Fatalf("the CRDs in %s: %v", crds, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	r := &pageRun{env: env, cwd: cwd, ctx: ctx}
	if checks.before != nil {
		checks.before(t, r)
	}
	r.replica = startReplica(t, lines[len(lines)-1], cwd, userEnv)
	defer r.replica.kill()
	defer func() {
		if t.Failed() {
			t.Logf("%s: the replica's log:\n%s", b.where(), r.replica.log.String())
		}
	}()
	r.replica.waitReady(t, ctx)
	if checks.ready != nil {
		checks.ready(t, r)
	}
	if t.Failed() {
		t.FailNow()
	}
	r.replica.stop(t)
	if checks.stopped != nil {
		checks.stopped(t, r)
	}
	return cwd
}

// replica is a replica process a page started.
type replica struct {
	cmd  *exec.Cmd
	log  testkit.SyncBuffer
	done chan struct{} // closed when it exited; err is then set
	err  error
}

func startReplica(t *testing.T, line, cwd string, env []string) *replica {
	t.Helper()
	r := &replica{done: make(chan struct{})}
	r.cmd = exec.Command("bash", "-c", "exec "+line)
	r.cmd.Dir, r.cmd.Env = cwd, env
	r.cmd.Stdout, r.cmd.Stderr = &r.log, &r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	return r
}

// waitReady waits until the replica's /readyz, at the default probe
// address, answers ok.
func (r *replica) waitReady(t *testing.T, ctx context.Context) {
	t.Helper()
	var last string
	for {
		select {
		case <-r.done:
			t.Fatalf("the replica exited before it was ready: %v", r.err)
		case <-ctx.Done():
			t.Fatalf("the replica was not ready in time; /readyz said: %s", last)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://127.0.0.1:8081/readyz")
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		last = resp.Status + " " + string(body)
		if resp.StatusCode == http.StatusOK {
			return
		}
	}
}

// stop sends SIGTERM and wants exit 0 within a minute.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0", r.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the replica did not exit within a minute of SIGTERM")
	}
}

func (r *replica) kill() {
	select {
	case <-r.done:
	default:
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// controlPlane starts a control plane (stopped at the end of the test)
// and writes its admin kubeconfig to home's ~/.kube/config.
func controlPlane(t *testing.T, home string) *testenv.Env {
	t.Helper()
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
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
	return env
}

// userEnvironment is this process's environment with HOME and REIN set as
// the pages assume, and nothing of this test's own configuration
// (KUBECONFIG, POD_*) leaking in. REIN_TESTBIN stays (or is set to this
// checkout's bin/): it is how a user points testenv at the binaries.
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
	// The binaries a user points testenv at after rein-testbin: this
	// checkout's, when this test found them there.
	if os.Getenv(testbin.DirEnv) == "" && os.Getenv(testbin.AssetsEnv) == "" {
		if _, err := os.Stat(filepath.Join(rein, "bin", "kube-apiserver")); err == nil {
			out = append(out, testbin.DirEnv+"="+filepath.Join(rein, "bin"))
		}
	}
	return append(out, "HOME="+home, "REIN="+rein)
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

// TestParsePage: the marker rules the pages are held to.
func TestParsePage(t *testing.T) {
	good := "text\n<!-- readme-test: file a/b.go -->\n```go\npackage b\n```\n\n" +
		"<!-- readme-test: skip (no network) -->\n```sh\ncurl x\n```\n<!-- readme-test: output -->\n```\nok\n```\n"
	blocks, err := parsePage("p.md", good)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 || blocks[0].arg != "a/b.go" || blocks[0].body != "package b\n" || blocks[1].arg != "(no network)" || blocks[2].kind != "output" {
		t.Fatalf("parsed %+v", blocks)
	}
	for name, text := range map[string]string{
		"unmarked":           "```sh\nls\n```\n",
		"marker, no block":   "<!-- readme-test: run -->\ntext\n",
		"two markers":        "<!-- readme-test: run -->\n<!-- readme-test: run -->\n```sh\nls\n```\n",
		"file without path":  "<!-- readme-test: file -->\n```go\npackage a\n```\n",
		"skip without why":   "<!-- readme-test: skip -->\n```sh\nls\n```\n",
		"run with argument":  "<!-- readme-test: run now -->\n```sh\nls\n```\n",
		"unclosed":           "<!-- readme-test: run -->\n```sh\nls\n",
		"unmarked after one": "<!-- readme-test: run -->\n```sh\nls\n```\n```sh\nls\n```\n",
	} {
		if _, err := parsePage("p.md", text); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "p.md") {
			t.Errorf("%s: %v does not name the page", name, err)
		}
	}
}
