package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rein-k8s/rein/bench/internal/common"
)

const freshBegin, freshEnd = "<!-- bench-fresh:begin -->", "<!-- bench-fresh:end -->"

// fresh is the fresh scenario: changes made while a new leader runs its
// first pass over every cached key, and how long each waits for its
// handler call. Its namespace is made once; every run has a Lease of its
// own.
type fresh struct {
	ns      string
	created time.Duration // creating its ConfigMaps
	work    time.Duration // every handler call's wait
	changes int           // changes per run
	// baseline is the rein commit built as "rein FIFO" (the last one
	// before the priority queue), head the tree built as "rein".
	baseline, head string
	loadBefore     string // the load average as the driver started
	res            *results
	// latencies are every framework's changes' latencies (ms), of every
	// round, for the pooled percentiles.
	latencies map[string][]float64
	// made and late count, per framework, the changes made, and those the
	// apiserver accepted only after the pass had ended (left out of the
	// latencies: they measure an idle queue).
	made, late map[string]int
}

// The fresh scenario's runs: rein before and after the priority queue,
// controller-runtime with its priority queue on (its default in v0.25)
// and off. Their names are Lease names too.
const (
	reinFIFO        = "rein-fifo"
	crPriorityQueue = "controller-runtime"
	crNoPriority    = "controller-runtime-no-priority-queue"
	reinFIFOProgram = "rein-fifo" // the driver's binary of rein at fresh.baseline
)

// freshFrameworks are the fresh scenario's runs in a round, in order, of
// the frameworks selected: rein FIFO and rein for rein, the priority
// queue on and off for controller-runtime.
func freshFrameworks() []framework {
	var out []framework
	for _, f := range frameworks {
		switch f.name {
		case "rein":
			out = append(out, framework{reinFIFO, reinFIFOProgram, nil}, f)
		case "controller-runtime":
			out = append(out,
				framework{crPriorityQueue, "controllerruntime", []string{"--priority-queue=true"}},
				framework{crNoPriority, "controllerruntime", []string{"--priority-queue=false"}})
		}
	}
	return out
}

// freshLabel is how the report names a run.
func (fr *fresh) label(name string) string {
	switch name {
	case reinFIFO:
		return fmt.Sprintf("rein FIFO (before, %s)", fr.baseline)
	case "rein":
		return fmt.Sprintf("rein priority queue (after, %s)", fr.head)
	case crPriorityQueue:
		return "controller-runtime, UsePriorityQueue on"
	case crNoPriority:
		return "controller-runtime, UsePriorityQueue off"
	}
	return name
}

// The fresh figures.
const (
	freshP50      = "change → handler call, p50 (ms)"
	freshP99      = "change → handler call, p99 (ms)"
	freshMax      = "change → handler call, max (ms)"
	freshPass     = "successor's pass: first handler call → every key handled (s)"
	freshFirst    = "first leader's pass: first handler call → every key handled (s)"
	freshTakeover = "SIGKILL → successor's first handler call (s)"
	freshInPass   = "changes accepted while the pass ran"
)

// createFresh makes the fresh namespace and its ConfigMaps.
func (d *driver) createFresh(work time.Duration, changes int, baseline, load string) {
	ns, took := d.createPayloadObjects("fresh")
	d.fresh = &fresh{loadBefore: load, ns: ns, created: took, work: work, changes: changes, baseline: baseline, head: treeVersion(),
		res: newResults(), latencies: map[string][]float64{}, made: map[string]int{}, late: map[string]int{}}
}

// freshRun: one framework on the fresh namespace. A first replica leads
// and runs its first pass (every handler call waits fresh.work and writes
// nothing); its length is the successor's pass's until that one logs its
// progress. A
// standby joins (rein caches before it leads: the driver waits for its
// "synced" line; controller-runtime without warmup caches nothing until it
// leads: it gets standbySettle), and the leader is killed (SIGKILL). From
// the successor's first handler call on, while its pass runs, the driver
// changes fresh.changes ConfigMaps picked at random, one at a time at
// random moments over 2–80% of the pass (its length estimated from the
// successor's progress lines), each change a new value of
// common.ChangeAnnotation. A change's latency is
// from the update's response to the successor's handler call that sees
// it (its "change" log line, written as the call starts).
func (d *driver) freshRun(r *run) {
	fr, fw, n := d.fresh, r.fw.name, d.objects
	add := func(figure string, v float64) { fr.res.addRound(fw, figure, r.round, v) }
	r.ns = fr.ns
	r.extra = []string{"--workload", common.WorkloadPass, "--delay", fr.work.String(), "--objects", strconv.Itoa(n)}
	// The pass of n keys by d.workers workers, each call fr.work long,
	// and the rest of the run's budget.
	passBudget := r.timeout() + time.Duration(n)*fr.work/time.Duration(max(d.workers, 1))

	p0 := r.startProc("r0", r.tag)
	first0, ok := p0.awaitLog("first-reconcile", r.timeout())
	if !ok {
		panic("first leader: no first-reconcile line")
	}
	all0, ok := p0.awaitLog("handled-all", passBudget)
	if !ok {
		panic("first leader: no handled-all line")
	}
	pass0 := all0.Sub(first0)
	add(freshFirst, pass0.Seconds())

	p1 := r.startProc("r1", r.tag)
	if r.fw.program == "controllerruntime" && !slices.Contains(r.fw.args, "--warmup") {
		time.Sleep(standbySettle)
	} else if _, ok := p1.awaitLog("synced", r.timeout()); !ok {
		panic("standby: no synced line")
	}
	time.Sleep(2 * time.Second) // the standby at rest
	killed := time.Now()
	p0.kill()
	start, ok := p1.awaitLog("first-reconcile", 2*time.Minute+r.timeout())
	if !ok {
		panic("successor: no first-reconcile line")
	}
	add(freshTakeover, start.Sub(killed).Seconds())

	// The changes' moments: uniform over [2%, 80%] of the successor's
	// pass from its first handler call, so the gaps between them are
	// random. The pass's length is estimated as the changes go, from the
	// successor's progress lines (each percent of the keys handled), and
	// until its first one from the first leader's pass. Their objects:
	// distinct, at random.
	at := make([]float64, min(fr.changes, n))
	for i := range at {
		at[i] = 0.02 + 0.78*rand.Float64()
	}
	slices.Sort(at)
	picked := rand.Perm(n)[:len(at)]
	type change struct {
		name, value string
		at          float64 // of the pass, as planned
		accepted    time.Time
	}
	var made []change
	ctx := context.Background()
	for i, frac := range at {
		ended := false
		for {
			pct, lastAt, done := p1.progress()
			if ended = done; ended {
				break
			}
			est := pass0
			if pct > 0 {
				est = lastAt.Sub(start) * 100 / time.Duration(pct)
			}
			wait := time.Until(start.Add(time.Duration(frac * float64(est))))
			if wait <= 0 {
				break
			}
			time.Sleep(min(wait, 50*time.Millisecond))
		}
		if ended {
			logf("%s: the successor's pass ended before change %d of %d: the rest are not made", r.tag, i+1, len(at))
			break
		}
		c := change{name: payloadObjectName(picked[i]), value: fmt.Sprintf("%s-%d", r.tag, i), at: frac}
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, common.ChangeAnnotation, c.value)
		_, err := d.cs.CoreV1().ConfigMaps(fr.ns).Patch(ctx, c.name, types.MergePatchType, patch, metav1.PatchOptions{})
		must(err)
		c.accepted = time.Now()
		made = append(made, c)
	}

	// Every change's handler call, then the end of the pass.
	var seen map[string]time.Time
	deadline := time.Now().Add(passBudget)
	for {
		seen = p1.changeLines()
		all := true
		for _, c := range made {
			if _, ok := seen[c.value]; !ok {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) || !p1.running() {
			panic(fmt.Sprintf("successor: handler calls for %d of %d changes", len(seen), len(made)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	end, ok := p1.awaitLog("handled-all", passBudget)
	if !ok {
		panic("successor: no handled-all line")
	}
	add(freshPass, end.Sub(start).Seconds())

	var lat []float64
	late := 0
	// Every change, for a look at the tail: its planned moment, when the
	// apiserver accepted it and when the handler saw it.
	var tsv strings.Builder
	tsv.WriteString("object\tvalue\tplanned (of the pass)\taccepted (s from the pass's start)\thandler call (s)\tlatency (ms)\tin the pass\n")
	for _, c := range made {
		ms := seen[c.value].Sub(c.accepted).Seconds() * 1000
		in := c.accepted.Before(end)
		fmt.Fprintf(&tsv, "%s\t%s\t%.3f\t%.3f\t%.3f\t%.1f\t%v\n", c.name, c.value, c.at, c.accepted.Sub(start).Seconds(), seen[c.value].Sub(start).Seconds(), ms, in)
		if !in {
			late++
			continue
		}
		lat = append(lat, ms)
	}
	_ = os.WriteFile(filepath.Join(d.logDir, r.tag+"-changes.tsv"), []byte(tsv.String()), 0o644)
	fr.made[fw] += len(made)
	fr.late[fw] += late
	fr.latencies[fw] = append(fr.latencies[fw], lat...)
	add(freshInPass, float64(len(lat)))
	if len(lat) == 0 {
		panic("no change was accepted while the pass ran")
	}
	add(freshP50, percentile(lat, 0.50))
	add(freshP99, percentile(lat, 0.99))
	add(freshMax, slices.Max(lat))
	logf("%s: first leader's pass %v; successor's pass %v from its first handler call (%v after SIGKILL); %d changes in the pass (%d after it): p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		r.tag, pass0.Round(time.Millisecond), end.Sub(start).Round(time.Millisecond), start.Sub(killed).Round(time.Millisecond),
		len(lat), late, percentile(lat, 0.5), percentile(lat, 0.99), slices.Max(lat))
}

// percentile is the nearest-rank p-quantile of v (0 < p ≤ 1): the
// smallest value with at least p of v at or below it.
func percentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// changeLines reads p's "change <name> <value> <time>" lines: the time of
// the first handler call that saw each value.
func (p *proc) changeLines() map[string]time.Time {
	out := map[string]time.Time{}
	f, err := os.Open(p.logPath)
	if err != nil {
		return out
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), "change ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 3 {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, fields[2]); err == nil {
			if _, dup := out[fields[1]]; !dup {
				out[fields[1]] = t
			}
		}
	}
	return out
}

// progress reads p's pass: the last "progress <percent> <time>" line
// (0 before the first), and whether "handled-all" is logged.
func (p *proc) progress() (pct int, at time.Time, ended bool) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0, time.Time{}, false
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "handled-all ") {
			ended = true
		}
		rest, ok := strings.CutPrefix(line, "progress ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 {
			continue
		}
		k, err1 := strconv.Atoi(fields[0])
		t, err2 := time.Parse(time.RFC3339Nano, fields[1])
		if err1 == nil && err2 == nil {
			pct, at = k, t
		}
	}
	return pct, at, ended
}

// buildBaseline builds bench/cmd/rein against rein at ref, into dir: the
// commit's tree (git archive, no worktree left behind) and a copy of
// bench's go.mod whose replace points at it (go build -modfile). It
// returns the binary and the commit's short hash.
func buildBaseline(dir, ref string) (string, string) {
	out, err := exec.Command("git", "rev-parse", "--short", ref+"^{commit}").Output()
	if err != nil {
		panic(fmt.Sprintf("--fifo-ref=%q: not a commit of this repository (git rev-parse: %v)", ref, err))
	}
	commit := strings.TrimSpace(string(out))
	src := filepath.Join(dir, "rein-"+commit)
	must(os.MkdirAll(src, 0o755))
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = ".."
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	must(err)
	untar.Stdin = pipe
	archive.Stderr, untar.Stderr = os.Stderr, os.Stderr
	must(untar.Start())
	must(archive.Run())
	must(untar.Wait())

	mod, err := os.ReadFile("go.mod")
	must(err)
	const replace = "replace github.com/rein-k8s/rein => ../\n"
	if !strings.Contains(string(mod), replace) {
		panic("bench/go.mod has no line " + strings.TrimSpace(replace) + ": cannot point it at the baseline")
	}
	modFile := filepath.Join(dir, "go.baseline.mod")
	must(os.WriteFile(modFile, []byte(strings.Replace(string(mod), replace, "replace github.com/rein-k8s/rein => "+src+"\n", 1)), 0o644))
	copyFile("go.sum", filepath.Join(dir, "go.baseline.sum")) // -modfile X.mod reads X.sum
	bin := filepath.Join(dir, reinFIFOProgram)
	b := exec.Command("go", "build", "-modfile", modFile, "-o", bin, "./cmd/rein")
	b.Stdout, b.Stderr = os.Stderr, os.Stderr
	must(b.Run())
	return bin, commit
}

func copyFile(from, to string) {
	in, err := os.Open(from)
	must(err)
	defer func() { _ = in.Close() }()
	out, err := os.Create(to)
	must(err)
	_, err = io.Copy(out, in)
	must(err)
	must(out.Close())
}
