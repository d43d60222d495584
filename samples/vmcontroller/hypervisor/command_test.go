package hypervisor_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rein-k8s/rein/internal/testkit"

	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

const commandPkg = "github.com/rein-k8s/rein/samples/vmcontroller/cmd/hypervisor"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// buildCommand builds cmd/hypervisor once per test binary run.
func buildCommand(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = mkdirTemp()
		if buildErr != nil {
			return
		}
		out, err := exec.Command(goTool, "build", "-o", filepath.Join(buildDir, "hypervisor"), commandPkg).CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building %s: %v", commandPkg, buildErr)
	}
	return filepath.Join(buildDir, "hypervisor")
}

// process is a running command.
type process struct {
	cmd    *exec.Cmd
	addr   string
	stderr *testkit.SyncBuffer
}

// startCommand runs the command and waits for its "listening on" line.
func startCommand(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), stderr: &testkit.SyncBuffer{}}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		addr, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found {
			t.Fatalf("first line of stdout %q, want \"listening on ADDR\"; stderr:\n%s", line, p.stderr)
		}
		p.addr = addr
	case <-time.After(waitTimeout):
		t.Fatalf("no \"listening on\" line within %v; stderr:\n%s", waitTimeout, p.stderr)
	}
	return p
}

// stop sends SIGTERM and returns the exit code.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return p.wait(t)
}

func (p *process) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(waitTimeout):
		t.Fatalf("the command did not exit within %v; stderr:\n%s", waitTimeout, p.stderr)
		return -1
	}
}

func TestCommand(t *testing.T) {
	bin := buildCommand(t)
	dataDir := t.TempDir()
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--transition", "20ms", "--refuse-images", "bad/, evil"}
	p := startCommand(t, bin, args...)
	base := "http://" + p.addr

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}

	c := hypervisor.NewClient(base, nil)
	vm, err := c.Create(ctx(t), req("uid"))
	if err != nil {
		t.Fatal(err)
	}
	bad := req("bad")
	bad.Image = "evil/image"
	if _, err := c.Create(ctx(t), bad); !hypervisor.IsImageRefused(err) {
		t.Fatalf("refused image: %v", err)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	logs := p.stderr.String()
	for _, want := range []string{"created", vm.ID, "token=uid"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}

	// A restart on the same data directory keeps the VM, and resumes or
	// has finished its transition.
	p = startCommand(t, bin, args...)
	c = hypervisor.NewClient("http://"+p.addr, nil)
	got, err := c.FindByToken(ctx(t), "uid")
	if err != nil || got.ID != vm.ID {
		t.Fatalf("after restart: FindByToken = %+v, %v; want %s", got, err, vm.ID)
	}
	deadline := time.Now().Add(waitTimeout)
	for got.State != hypervisor.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("vm state %s after restart, want Running", got.State)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
		if got, err = c.Get(ctx(t), vm.ID); err != nil {
			t.Fatal(err)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after the second SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
}

func TestCommandBadFlags(t *testing.T) {
	bin := buildCommand(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--bogus"}, "bogus"},
		{[]string{"--data-dir", dir, "--latency", "fast"}, "latency"},
		{[]string{"--data-dir", dir, "--transition", "-1s"}, "transition"},
		{[]string{"--data-dir", dir, "--error-rate", "1.5"}, "error-rate"},
		{[]string{"--data-dir", dir, "--error-rate", "half"}, "error-rate"},
		{[]string{"--data-dir", dir, "--seed", "x"}, "seed"},
		{[]string{"--listen", "127.0.0.1:0"}, "data-dir"},
	} {
		cmd := exec.Command(bin, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit code 2; stderr:\n%s", tc.args, err, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), tc.flag) {
			t.Errorf("%v: stderr does not name %q:\n%s", tc.args, tc.flag, stderr.String())
		}
	}
}

func TestCommandCorruptDataDir(t *testing.T) {
	bin := buildCommand(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "vms.json")
	if err := writeFile(path, "{oops"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--data-dir", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("%v, want exit code 1; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), path) {
		t.Fatalf("stderr does not name %s:\n%s", path, stderr.String())
	}
}
