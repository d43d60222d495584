package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

type results struct {
	mu      sync.Mutex
	figures []string                        // in first-seen order
	values  map[string]map[string][]float64 // figure → framework → values
	rounds  map[string]map[string][]int     // figure → framework → the round of each value (0: not told)
	fails   map[string]int                  // framework/scenario → failed runs
}

func newResults() *results {
	return &results{values: map[string]map[string][]float64{}, rounds: map[string]map[string][]int{}, fails: map[string]int{}}
}

func (r *results) add(fw, figure string, v float64) { r.addRound(fw, figure, 0, v) }

// addRound adds v, measured in round, to figure of fw.
func (r *results) addRound(fw, figure string, round int, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.values[figure] == nil {
		r.values[figure] = map[string][]float64{}
		r.rounds[figure] = map[string][]int{}
		r.figures = append(r.figures, figure)
	}
	r.values[figure][fw] = append(r.values[figure][fw], v)
	r.rounds[figure][fw] = append(r.rounds[figure][fw], round)
}

// byRound returns fw's values of figure by the round they were measured in.
func (r *results) byRound(figure, fw string) map[int]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int]float64{}
	for i, round := range r.rounds[figure][fw] {
		out[round] = r.values[figure][fw][i]
	}
	return out
}

func (r *results) fail(fw, scenario string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails[fw+" / "+scenario]++
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func num(x float64) string {
	switch {
	case x == 0:
		return "0"
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	case x >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

func cell(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	return fmt.Sprintf("%s (%s–%s, n=%d)", num(median(v)), num(slices.Min(v)), num(slices.Max(v)), len(v))
}

const beginMark, endMark = "<!-- bench:begin -->", "<!-- bench:end -->"

func (d *driver) report(repeats, objects, workers int, binDir string, took time.Duration) string {
	var b strings.Builder
	names := make([]string, 0, len(frameworks))
	for _, f := range frameworks {
		names = append(names, f.name)
	}
	fmt.Fprintf(&b, "%s\n## Side by side: rein, wrangler, controller-runtime\n\n", beginMark)
	fmt.Fprintf(&b, "Written by `bench/cmd/driver` on %s in %v. Each framework runs the same minimal\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second))
	fmt.Fprintf(&b, "leader-elected controller (`bench/cmd/*`): mark every ConfigMap of one namespace with\n")
	fmt.Fprintf(&b, "one annotation (%s), lease %v / renew deadline %v / retry %v, %d workers,\n", writeHow(d.write), leaseDuration, renewDeadline, retryPeriod, workers)
	fmt.Fprintf(&b, "%d ConfigMaps, %d rounds with the frameworks interleaved. Cells: median (min–max, n).\n", objects, repeats)
	fmt.Fprintf(&b, "Times of writes come from the apiserver's audit log, Lease changes from a watch\n")
	fmt.Fprintf(&b, "(`acquireTime`), leading and first reconcile from each process's log, all on one clock.\n")
	fmt.Fprintf(&b, "Requests are counted per process (its own user agent) in the audit log. CPU and peak RSS\n")
	fmt.Fprintf(&b, "come from /proc; apiserver + etcd CPU is theirs from the controller's start to the last mark.\n\n")

	if names[0] == "rein" && len(names) > 1 {
		b.WriteString(d.targets(names[1:]))
	}

	b.WriteString(table(d.results, names))
	b.WriteString("\nVersions: " + versions(binDir) + "\n\n")
	b.WriteString("Machine: " + machine() + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench` (the side-by-side part is `cd bench && go run ./cmd/driver --repeats %d --objects %d --out ../docs/benchmarks.md`;\n", repeats, objects)
	b.WriteString("`--profile-dir DIR` adds CPU profiles of the apiserver and the controllers, `--write update` writes by PUT instead).\n")
	b.WriteString("wrangler names a replica by its hostname, so the driver starts each wrangler process in its own UTS\n")
	b.WriteString("namespace (as pods are) and the process sets its hostname to the replica's name; wrangler\n")
	b.WriteString("reads its timings from CATTLE_ELECTION_* variables, which the program sets from the flags.\n")
	b.WriteString(endMark + "\n")
	return b.String()
}

// table renders res as a markdown table, one column per framework of names
// and, when names starts with rein, a ratio column rein / peer for each
// other, followed by the failed runs, if any.
func table(res *results, names []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| figure | %s |", strings.Join(names, " | "))
	var peers []string
	for _, n := range names[1:] {
		if names[0] == "rein" {
			peers = append(peers, n)
			fmt.Fprintf(&b, " rein / %s |", n)
		}
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(names)+len(peers)) + "\n")
	for _, fig := range res.figures {
		fmt.Fprintf(&b, "| %s |", fig)
		for _, n := range names {
			fmt.Fprintf(&b, " %s |", cell(res.values[fig][n]))
		}
		rein := res.values[fig]["rein"]
		for _, p := range peers {
			pv := res.values[fig][p]
			if len(rein) == 0 || len(pv) == 0 || median(pv) == 0 {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %s× |", num(median(rein)/median(pv)))
		}
		b.WriteString("\n")
	}
	if f := res.failed(); f != "" {
		b.WriteString("\n" + f)
	}
	return b.String()
}

// failed is the line that lists the failed runs, "" when none failed.
func (r *results) failed() string {
	if len(r.fails) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Failed runs (left out of the table):")
	for _, k := range slices.Sorted(maps.Keys(r.fails)) {
		fmt.Fprintf(&b, " %s: %d;", k, r.fails[k])
	}
	return b.String() + "\n"
}

func writeHow(write string) string {
	if write == "update" {
		return "update of the cached object"
	}
	return "JSON merge patch"
}

// targets checks rein's figures against the project's targets, as ratios
// against the best peer of the same run.
func (d *driver) targets(peers []string) string {
	v := d.results.values
	med := func(fig, fw string) (float64, bool) {
		if x := v[fig][fw]; len(x) > 0 {
			return median(x), true
		}
		return 0, false
	}
	// best returns the best peer's median: the lowest, or with high the highest.
	best := func(fig string, high bool) (string, float64, bool) {
		name, val, found := "", 0.0, false
		for _, p := range peers {
			m, ok := med(fig, p)
			if ok && (!found || (high && m > val) || (!high && m < val)) {
				name, val, found = p, m, true
			}
		}
		return name, val, found
	}
	var b strings.Builder
	b.WriteString("| target for rein | rein | best peer | result |\n|---|---|---|---|\n")
	row := func(target, rein, peer string, ok bool) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", target, rein, peer, verdict(ok))
	}
	if fig := "graceful handoff (SIGTERM): → successor's first write (s)"; true {
		r, ok1 := med(fig, "rein")
		p, pv, ok2 := best(fig, false)
		if ok1 && ok2 && r > 0 {
			row("handoff (SIGTERM → first write) ≥ 5× faster", num(r*1000)+" ms", fmt.Sprintf("%s ms (%s): %s× faster", num(pv*1000), p, num(pv/r)), pv/r >= 5)
		}
	}
	if fig := "crash takeover (SIGKILL): → successor's first write (s)"; true {
		if r, ok := med(fig, "rein"); ok {
			limit := (leaseDuration + 150*time.Millisecond).Seconds()
			p, pv, _ := best(fig, false)
			row(fmt.Sprintf("crash takeover (SIGKILL → first write) ≤ lease + 150 ms = %s s", num(limit)), num(r)+" s (max "+num(slices.Max(v[fig]["rein"]))+" s)", fmt.Sprintf("%s s (%s)", num(pv), p), r <= limit)
		}
	}
	if fig := "idle: standby requests/s (each)"; true {
		if x := v[fig]["rein"]; len(x) > 0 {
			p, pv, _ := best(fig, false)
			row("zero periodic standby requests", fmt.Sprintf("max %s req/s over %d standby windows", num(slices.Max(x)), len(x)), fmt.Sprintf("%s req/s (%s)", num(pv), p), slices.Max(x) == 0)
		}
	}
	if fig := "throughput: objects/s after leading"; true {
		r, ok1 := med(fig, "rein")
		p, pv, ok2 := best(fig, true)
		if ok1 && ok2 && pv > 0 {
			row("throughput ≥ 1.2× the best peer", num(r)+" objects/s", fmt.Sprintf("%s objects/s (%s): %s×", num(pv), p, num(r/pv)), r/pv >= 1.2)
		}
	}
	if fig := "throughput: controller CPU seconds"; true {
		r, ok1 := med(fig, "rein")
		p, pv, ok2 := best(fig, false)
		if ok1 && ok2 && pv > 0 {
			row("CPU per reconcile ≤ 0.7× the best peer", fmt.Sprintf("%s s (%s ms per object)", num(r), num(r*1000/float64(d.objects))), fmt.Sprintf("%s s (%s): %s×", num(pv), p, num(r/pv)), r/pv <= 0.7)
		}
	}
	if fig := "throughput: peak RSS (MiB)"; true {
		r, ok1 := med(fig, "rein")
		p, pv, ok2 := best(fig, false)
		if ok1 && ok2 {
			row("peak RSS ≤ the leanest peer", num(r)+" MiB", fmt.Sprintf("%s MiB (%s): %s×", num(pv), p, num(r/pv)), r <= pv)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// verdict is a target's result cell.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func versions(binDir string) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Version}}",
		"github.com/rancher/wrangler/v3", "github.com/rancher/lasso", "sigs.k8s.io/controller-runtime", "k8s.io/client-go").Output()
	v := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", ",")), " ")
	if err != nil {
		v = "(go list failed: " + err.Error() + ")"
	}
	v += ", rein (this tree), " + runtime.Version()
	if binDir != "" {
		if o, err := exec.Command(binDir+"/kube-apiserver", "--version").Output(); err == nil {
			v += ", kube-apiserver " + strings.TrimSpace(strings.TrimPrefix(string(o), "Kubernetes "))
		}
	}
	return v
}

func machine() string {
	m := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(l, "model name"); ok {
				m += ", " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]); len(f) >= 2 {
			m += ", MemTotal " + f[1] + " kB"
		}
	}
	return m + "; apiserver, etcd and the controllers share the same cores"
}
