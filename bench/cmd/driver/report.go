package main

import (
	"fmt"
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
	fails   map[string]int                  // framework/scenario → failed runs
}

func newResults() *results {
	return &results{values: map[string]map[string][]float64{}, fails: map[string]int{}}
}

func (r *results) add(fw, figure string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.values[figure] == nil {
		r.values[figure] = map[string][]float64{}
		r.figures = append(r.figures, figure)
	}
	r.values[figure][fw] = append(r.values[figure][fw], v)
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

func (d *driver) report(repeats, objects, workers int, binDir string) string {
	var b strings.Builder
	names := make([]string, 0, len(frameworks))
	for _, f := range frameworks {
		names = append(names, f.name)
	}
	fmt.Fprintf(&b, "%s\n## Side by side: rein, wrangler, controller-runtime\n\n", beginMark)
	fmt.Fprintf(&b, "Written by `bench/cmd/driver` on %s. Each framework runs the same minimal\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "leader-elected controller (`bench/cmd/*`): mark every ConfigMap of one namespace with\n")
	fmt.Fprintf(&b, "one annotation by merge patch; lease 15s / renew deadline 10s / retry 2s, %d workers,\n", workers)
	fmt.Fprintf(&b, "%d ConfigMaps, %d rounds with the frameworks interleaved. Cells: median (min–max, n).\n", objects, repeats)
	fmt.Fprintf(&b, "Times of writes come from the apiserver's audit log, lease changes from a watch,\n")
	fmt.Fprintf(&b, "leading/first reconcile from each process's log, all on one clock. Idle load counts\n")
	fmt.Fprintf(&b, "every request of each process (per-process user agent) in the audit log.\n\n")

	fmt.Fprintf(&b, "| figure | %s |", strings.Join(names, " | "))
	var peers []string
	for _, n := range names[1:] {
		if names[0] == "rein" {
			peers = append(peers, n)
			fmt.Fprintf(&b, " rein / %s |", n)
		}
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(names)+len(peers)) + "\n")
	for _, fig := range d.results.figures {
		fmt.Fprintf(&b, "| %s |", fig)
		for _, n := range names {
			fmt.Fprintf(&b, " %s |", cell(d.results.values[fig][n]))
		}
		rein := d.results.values[fig]["rein"]
		for _, p := range peers {
			pv := d.results.values[fig][p]
			if len(rein) == 0 || len(pv) == 0 || median(pv) == 0 {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %s× |", num(median(rein)/median(pv)))
		}
		b.WriteString("\n")
	}
	if len(d.results.fails) > 0 {
		b.WriteString("\nFailed runs (left out of the table):")
		for k, v := range d.results.fails {
			fmt.Fprintf(&b, " %s: %d;", k, v)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nVersions: " + versions(binDir) + "\n\n")
	b.WriteString("Machine: " + machine() + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench-peers`, i.e. `cd bench && go run ./cmd/driver --repeats %d --objects %d --out ../docs/benchmarks.md`.\n", repeats, objects)
	b.WriteString("wrangler names a replica by its hostname, so the driver starts each wrangler process in its own UTS\n")
	b.WriteString("namespace (as pods are) and the process sets its hostname to the replica's name; wrangler\n")
	b.WriteString("reads its timings from CATTLE_ELECTION_* variables, which the program sets from the flags.\n")
	b.WriteString(endMark + "\n")
	return b.String()
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

// writeSection replaces the bench section of path (between the markers), or
// appends it.
func writeSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	if i := strings.Index(s, beginMark); i >= 0 {
		if j := strings.Index(s[i:], endMark); j >= 0 {
			rest := strings.TrimPrefix(s[i+j+len(endMark):], "\n")
			return os.WriteFile(path, []byte(s[:i]+section+rest), 0o644)
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n\n") {
		s = strings.TrimRight(s, "\n") + "\n\n"
	}
	return os.WriteFile(path, []byte(s+section), 0o644)
}
