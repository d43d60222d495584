package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The election timings every controller runs with.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// proc is one controller process.
type proc struct {
	name, ua, mark string
	cmd            *exec.Cmd
	logPath        string
	profile        string // --cpuprofile-on-usr1's file, if any
	started        time.Time
	exited         chan struct{}
	state          *os.ProcessState
}

func (r *run) startProc(name, mark string) *proc {
	p := &proc{name: name, mark: mark, ua: "bench-" + r.fw.name + "/" + r.tag + "/" + name, exited: make(chan struct{})}
	p.logPath = filepath.Join(r.d.logDir, r.tag+"-"+name+".log")
	logFile, err := os.Create(p.logPath)
	must(err)
	ns, lease := r.d.ns, r.tag
	if r.ns != "" {
		ns = r.ns
	}
	if r.lease != "" {
		lease = r.lease
	}
	args := []string{
		"--kubeconfig", r.d.env.KubeconfigPath(), "--namespace", ns,
		"--lease-name", lease, "--lease-namespace", ns,
		"--lease-duration", leaseDuration.String(), "--renew-deadline", renewDeadline.String(), "--retry-period", retryPeriod.String(),
		"--workers", strconv.Itoa(r.d.workers), "--user-agent", p.ua, "--mark", mark, "--identity", name,
		"--write", r.d.write,
	}
	args = append(args, r.fw.args...)
	args = append(args, r.extra...)
	if r.fw.program == "rein" {
		args = append(args, "--log-level", r.d.reinLog)
	}
	switch {
	case r.d.profDir != "" && strings.HasPrefix(r.tag, "throughput"):
		args = append(args, "--cpuprofile", filepath.Join(r.d.profDir, r.tag+"-"+name+".ctl.pprof"), "--cpuprofile-for", "6s")
	case r.d.profDir != "" && strings.HasPrefix(r.tag, "tracing"):
		args = append(args, "--cpuprofile", filepath.Join(r.d.profDir, r.tag+"-"+name+".ctl.pprof"), "--cpuprofile-for", "12s")
	case r.d.profDir != "" && strings.HasPrefix(r.tag, "partition"):
		// The steady changes: partitionSteady signals their start and end.
		p.profile = filepath.Join(r.d.profDir, r.tag+"-"+name+".steady.pprof")
		args = append(args, "--cpuprofile", p.profile, "--cpuprofile-on-usr1", "--cpuprofile-for", (r.d.part.window + time.Minute).String())
	case r.d.profDir != "" && strings.HasPrefix(r.tag, "sharded") && r.fw.program == "rein":
		args = append(args, "--cpuprofile", filepath.Join(r.d.profDir, r.tag+"-"+name+".ctl.pprof"), "--cpuprofile-for", "10s")
	}
	p.cmd = exec.Command(r.d.binaries[r.fw.program], args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if len(r.env) > 0 {
		p.cmd.Env = append(os.Environ(), r.env...)
	}
	if r.fw.program == "wrangler" {
		// wrangler names the replica by its hostname: give each its own, as pods have.
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	}
	p.started = time.Now()
	must(p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		_ = logFile.Close()
		close(p.exited)
	}()
	r.procs = append(r.procs, p)
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the process to end, killing it after
// grace.
func (p *proc) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		logf("%s: still running %v after SIGTERM: killing it", p.name, grace)
		p.kill()
	}
}

// awaitLog waits for a log line starting with word and returns its time.
func (p *proc) awaitLog(word string, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if t, ok := p.logTime(word); ok {
			return t, true
		}
		if !p.running() || time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitFile waits until the process has written path (a profile: empty
// until it ends), or for timeout.
func (p *proc) awaitFile(path string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && p.running() {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	logf("%s: %s still empty after %v", p.name, path, timeout)
}

// signal sends sig to the process, if it still runs.
func (p *proc) signal(sig syscall.Signal) {
	if p.running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

// logTime returns the time on the log line starting with word, if any.
func (p *proc) logTime(word string) (time.Time, bool) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return time.Time{}, false
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), word+" "); ok {
			if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(rest)); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// logContains tells whether p's log holds s.
func (p *proc) logContains(s string) bool {
	data, _ := os.ReadFile(p.logPath)
	return strings.Contains(string(data), s)
}

func (p *proc) tail() string {
	data, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// childPIDs returns the pids of this process's children whose command is one of names.
func childPIDs(names ...string) []int {
	entries, err := os.ReadDir("/proc")
	must(err)
	self := strconv.Itoa(os.Getpid())
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+2:])
		if len(f) > 1 && f[1] == self && slices.Contains(names, s[open+1:closing]) {
			pids = append(pids, pid)
		}
	}
	if len(pids) != len(names) {
		panic(fmt.Sprintf("found %d of the control plane's processes %v among the driver's children", len(pids), names))
	}
	return pids
}

// cpuOf sums the CPU seconds (utime+stime) of pids.
func cpuOf(pids ...int) float64 {
	total := 0.0
	for _, pid := range pids {
		total += cpuSeconds(pid)
	}
	return total
}

func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// fields after ")": state(0) ... utime(11) stime(12)
	f := strings.Fields(s[i+2:])
	if len(f) <= 12 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ
}

// usage reads CPU seconds (utime+stime) and VmHWM (bytes) of a live process.
func (p *proc) usage() (cpu float64, hwm float64) {
	pid := p.cmd.Process.Pid
	cpu = cpuSeconds(pid)
	if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					kb, _ := strconv.ParseFloat(f[0], 64)
					hwm = kb * 1024
				}
			}
		}
	}
	return cpu, hwm
}
