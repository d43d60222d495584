package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one controller process.
type proc struct {
	name, ua, mark string
	cmd            *exec.Cmd
	logPath        string
	started        time.Time
	exited         chan struct{}
	state          *os.ProcessState
}

func (r *run) startProc(name, mark string) *proc {
	p := &proc{name: name, mark: mark, ua: "bench-" + r.fw.name + "/" + r.tag + "/" + name, exited: make(chan struct{})}
	p.logPath = filepath.Join(r.d.logDir, r.tag+"-"+name+".log")
	logFile, err := os.Create(p.logPath)
	must(err)
	args := []string{
		"--kubeconfig", r.d.env.KubeconfigPath(), "--namespace", r.ns,
		"--lease-name", "bench", "--lease-namespace", r.ns,
		"--lease-duration", "15s", "--renew-deadline", "10s", "--retry-period", "2s",
		"--workers", strconv.Itoa(r.d.workers), "--user-agent", p.ua, "--mark", mark, "--identity", name,
		"--write", r.d.write,
	}
	args = append(args, r.fw.args...)
	if r.d.profDir != "" && strings.HasPrefix(r.tag, "throughput") {
		args = append(args, "--cpuprofile", filepath.Join(r.d.profDir, r.tag+"-"+name+".ctl.pprof"), "--cpuprofile-for", "6s")
	}
	p.cmd = exec.Command(r.d.binaries[r.fw.program], args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
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

func (p *proc) tail() string {
	data, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// usage reads CPU seconds (utime+stime) and VmHWM (bytes) of a live process.
func (p *proc) usage() (cpu float64, hwm float64) {
	pid := p.cmd.Process.Pid
	if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		s := string(data)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+2:])
			// fields after ")": state(0) ... utime(11) stime(12)
			if len(f) > 12 {
				u, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				cpu = (u + st) / 100 // USER_HZ
			}
		}
	}
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
