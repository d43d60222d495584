package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"
)

// proc is a running etcd or kube-apiserver. testenv starts them itself,
// rather than through envtest, to own their whole life: they run in a
// process group of their own, which Stop ends with SIGTERM and then, after
// a bounded grace, SIGKILL, waiting each time until the process has really
// exited; and on Linux they get SIGKILL when the test binary dies (killed
// by go test's -timeout, say), so none outlives it.
type proc struct {
	name string
	log  string // the file of its output
	cmd  *exec.Cmd
	// done is closed once the process has exited and been reaped; err is
	// Wait's result, written before.
	done chan struct{}
	err  error
}

// killWait bounds the wait for a process to go after SIGKILL, which it
// cannot catch: only a process stuck in the kernel (a dead disk) is slower.
const killWait = 10 * time.Second

// startProc starts path with args, its output appended to log.
func startProc(name, path string, args []string, log *os.File) (*proc, error) {
	cmd := exec.Command(path, args...)
	// An *os.File is handed to the process as is: no copying goroutine
	// for Wait to wait for.
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	p := &proc{name: name, log: log.Name(), cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go p.run(started)
	if err := <-started; err != nil {
		return nil, fmt.Errorf("testenv: start %s: %w", name, err)
	}
	return p, nil
}

// run starts the process and reaps it, the goroutine that owns it: it
// ends when the process exits, which Stop sees to. It keeps its OS thread
// locked for the process's whole life because Linux sends the parent-death
// signal when the thread that started the child ends, not the process, and
// Go ends a thread when a goroutine that locked it returns without
// unlocking: on a shared thread, another test's LockOSThread could kill the
// control plane.
func (p *proc) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := p.cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM to its group, then SIGKILL if it has not
// exited within grace. It returns once the process has exited, with
// killed telling whether SIGKILL was needed; err is set only when the
// process is still there after SIGKILL.
func (p *proc) stop(grace time.Duration) (killed bool, err error) {
	if p.exited() {
		return false, nil
	}
	// An error means the process is gone already; done says so below.
	_ = terminate(p.cmd.Process)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return false, nil
	case <-timer.C:
	}
	if err := kill(p.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) && !p.exited() {
		return true, fmt.Errorf("testenv: kill %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	timer.Reset(killWait)
	select {
	case <-p.done:
		return true, nil
	case <-timer.C:
		return true, fmt.Errorf("testenv: %s (pid %d) is still running %v after SIGKILL", p.name, p.cmd.Process.Pid, killWait)
	}
}

// readyPoll is how often waitReady asks; a component says nothing when it
// becomes ready, so asking is the only way to know.
const readyPoll = 100 * time.Millisecond

// waitReady waits until url answers 200, p exits or timeout passes.
func waitReady(p *proc, client *http.Client, url string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if answersOK(client, url) {
			return nil
		}
		select {
		case <-p.done:
			tail := logTail(p.log)
			err := fmt.Errorf("%s exited before it was ready (%v); the end of %s:\n%s", p.name, p.err, p.log, tail)
			if strings.Contains(tail, "address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		case <-deadline.C:
			return fmt.Errorf("%s not ready after %v; the end of %s:\n%s", p.name, timeout, p.log, logTail(p.log))
		case <-tick.C:
		}
	}
}

func answersOK(client *http.Client, url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// logTail is the last lines of a component's log, for an error that the
// removal of Dir would otherwise leave without its cause.
func logTail(path string) string {
	const limit = 4 << 10
	content, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(content) > limit {
		content = content[len(content)-limit:]
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			content = content[i+1:]
		}
	}
	return string(content)
}

// freePorts returns n distinct loopback ports that are free now and that
// no other control plane of this binary got.
func freePorts(n int) ([]int, error) {
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for len(ports) < n {
		if len(held) > 100 {
			return nil, errors.New("testenv: no free loopback ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testenv: find a free port: %w", err)
		}
		// Held until all n are found, so that they are distinct.
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			ports = append(ports, port)
		}
	}
	return ports, nil
}

var handedOut = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}
