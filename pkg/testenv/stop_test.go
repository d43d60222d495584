package testenv_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rein-k8s/rein/pkg/testenv"
)

// leakHelperEnv selects, in a run of this test binary by
// TestStopEndsWhatATestLeftOpen, how TestLeakHelper leaves its watch:
//
//   - "pass": on the admin's rest.Config, the test passes;
//   - "fail": the same, the test fails;
//   - "untracked": on a config from the kubeconfig file, which testenv
//     cannot see nor end, so the apiserver only goes with SIGKILL;
//   - "crash": the test binary dies (a panic, as go test's -timeout makes)
//     and Stop never runs.
const leakHelperEnv = "REIN_TESTENV_LEAK_HELPER"

// Lines TestLeakHelper prints for its parent.
const (
	dirLine  = "testenv dir: "
	pidsLine = "control plane pids: "
)

// untrackedGrace is the helper's StopTimeout in the untracked mode, short:
// the apiserver is killed after it.
const untrackedGrace = 2 * time.Second

func leakHelperOptions(mode string) testenv.Options {
	if mode == "untracked" {
		return testenv.Options{StopTimeout: untrackedGrace}
	}
	return testenv.Options{}
}

// TestStopEndsWhatATestLeftOpen runs, in a child process, a package whose
// TestMain is testenv.Main and whose test returns with a watch open on a
// context that never ends. The package's exit status must be its tests'
// result, its output must name the open watch (or the killed apiserver,
// when testenv could not see the watch), and neither etcd nor
// kube-apiserver may survive, nor the control plane's folder. A package
// that dies before Stop takes etcd and kube-apiserver with it (Linux's
// parent-death signal).
func TestStopEndsWhatATestLeftOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts control planes in child processes")
	}
	if runtime.GOOS != "linux" {
		t.Skip("finds the control plane's processes in /proc")
	}
	const openWatch = "still open at stop: WATCH /api/v1/namespaces/default/configmaps?watch=true (user admin"
	for _, tc := range []struct {
		mode     string
		wantFail bool
		want     []string
		crash    bool // Stop does not run: the folder stays, the processes are killed by the kernel
	}{
		{mode: "pass", want: []string{"--- PASS: TestLeakHelper", "WARNING: ", openWatch}},
		{mode: "fail", wantFail: true, want: []string{"--- FAIL: TestLeakHelper", openWatch}},
		{mode: "untracked", want: []string{
			"--- PASS: TestLeakHelper", "WARNING: ",
			fmt.Sprintf("did not exit within %v of SIGTERM and was killed", untrackedGrace),
		}},
		{mode: "crash", wantFail: true, crash: true, want: []string{"panic: dies on purpose"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLeakHelper$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), leakHelperEnv+"="+tc.mode)
			begin := time.Now()
			outBytes, err := cmd.CombinedOutput()
			out := string(outBytes)
			var exitErr *exec.ExitError
			if err != nil && !errors.As(err, &exitErr) {
				t.Fatalf("run the helper: %v", err)
			}
			t.Logf("helper %s: exit %d after %v", tc.mode, cmd.ProcessState.ExitCode(), time.Since(begin).Round(time.Millisecond))
			if failed := cmd.ProcessState.ExitCode() != 0; failed != tc.wantFail {
				t.Errorf("exit status %d, want the tests' result (failed: %v); output:\n%s", cmd.ProcessState.ExitCode(), tc.wantFail, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}

			dir, pids := helperReport(t, out)
			if len(pids) != 2 {
				t.Fatalf("the helper saw %d control plane processes (%v), want etcd and kube-apiserver; output:\n%s", len(pids), pids, out)
			}
			if tc.crash {
				t.Cleanup(func() { _ = os.RemoveAll(dir) })
				// The kernel sends SIGKILL as the helper exits, but
				// the processes die when they are next scheduled, and
				// no event of theirs reaches this process: poll.
				deadline := time.Now().Add(10 * time.Second)
				for len(processesNaming(t, dir)) > 0 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if left := processesNaming(t, dir); len(left) > 0 {
				t.Errorf("processes left running: %s", strings.Join(left, "; "))
				// They are this test's doing: not left to the machine.
				for _, p := range left {
					if pid, err := strconv.Atoi(strings.Fields(p)[0]); err == nil {
						if proc, err := os.FindProcess(pid); err == nil {
							_ = proc.Kill()
						}
					}
				}
			}
			for _, pid := range pids {
				if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cmdline), dir) {
					t.Errorf("pid %d survives: %s", pid, cmdline)
				}
			}
			if _, err := os.Stat(dir); !tc.crash && !os.IsNotExist(err) {
				t.Errorf("the control plane's folder %s is left (stat: %v)", dir, err)
			}
		})
	}
}

// TestLeakHelper is the test of the child process: it leaves a watch open
// on a context that never ends, as a test that forgot to cancel does.
func TestLeakHelper(t *testing.T) {
	mode := os.Getenv(leakHelperEnv)
	if mode == "" {
		t.Skip("run by TestStopEndsWhatATestLeftOpen in a child process")
	}
	fmt.Println(dirLine + env.Dir())
	var pids []string
	for _, p := range processesNaming(t, env.Dir()) {
		pids = append(pids, strings.Fields(p)[0])
	}
	fmt.Println(pidsLine + strings.Join(pids, " "))

	cfg := env.Config()
	if mode == "untracked" {
		var err error
		if cfg, err = clientcmd.BuildConfigFromFlags("", env.KubeconfigPath()); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Watch(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "fail":
		t.Error("fails on purpose")
	case "crash":
		panic("dies on purpose")
	}
}

// helperReport reads the control plane's folder and pids from the
// helper's output.
func helperReport(t *testing.T, out string) (dir string, pids []int) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, dirLine); ok {
			dir = d
		}
		if p, ok := strings.CutPrefix(line, pidsLine); ok {
			for _, f := range strings.Fields(p) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("pid %q: %v", f, err)
				}
				pids = append(pids, pid)
			}
		}
	}
	if !strings.HasPrefix(dir, os.TempDir()) {
		t.Fatalf("no control plane folder in the helper's output:\n%s", out)
	}
	return dir, pids
}

// processesNaming lists the processes whose command line names dir, each
// as "PID COMMAND LINE".
func processesNaming(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, path := range cmdlines {
		// A process that ended since the listing has no file: not left.
		cmdline, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(cmdline), dir) {
			continue
		}
		pid := filepath.Base(filepath.Dir(path))
		found = append(found, pid+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}
