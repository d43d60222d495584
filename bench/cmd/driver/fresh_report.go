package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// freshTarget is issue 29's target for rein: a change made during a new
// leader's first pass reaches its handler within this, at the 99th
// percentile.
const freshTarget = 200 * time.Millisecond

func (d *driver) freshReport(repeats, objects, workers int, binDir string, took time.Duration) string {
	fr := d.fresh
	var names []string
	for _, f := range freshFrameworks() {
		names = append(names, f.name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## A new leader's first pass: how long a change waits\n\n", freshBegin)
	fmt.Fprintf(&b, "Written by `bench/cmd/driver --scenarios fresh` on %s in %v. One namespace of %d ConfigMaps, each with\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second), objects)
	fmt.Fprintf(&b, "%d B of data, created once by the driver with 16 goroutines (%v). Every run has a Lease of its own; %d workers,\n", scaleDataBytes, fr.created.Round(100*time.Millisecond), workers)
	fmt.Fprintf(&b, "lease %v / renew deadline %v / retry %v; %s with the runs interleaved. The handler (`--workload pass`)\n", leaseDuration, renewDeadline, retryPeriod, plural(repeats, "1 round", fmt.Sprintf("%d rounds", repeats)))
	fmt.Fprintf(&b, "waits %v on every call (a simulated check of an external system) and writes nothing, so a pass over every\n", fr.work)
	fmt.Fprintf(&b, "key takes a while and the apiserver carries only the changes.\n\n")
	fmt.Fprintf(&b, "A first replica leads and runs its first pass; a standby joins (rein caches before it leads: the driver\n")
	fmt.Fprintf(&b, "waits for its `synced` line; controller-runtime without warmup caches nothing until it leads: it gets %v);\n", standbySettle)
	fmt.Fprintf(&b, "the leader is killed (SIGKILL). From the successor's first handler call, while its pass over the %d keys\n", objects)
	fmt.Fprintf(&b, "runs, the driver changes %d ConfigMaps picked at random, one at a time at random moments (uniform over\n", fr.changes)
	fmt.Fprintf(&b, "2–80%% of the pass, whose length it estimates from the successor's `progress` lines, one per percent of the\n")
	fmt.Fprintf(&b, "keys handled, and before the first from the first leader's pass), each a new value of the annotation\n")
	fmt.Fprintf(&b, "`bench.rein.dev/change`, and checks before each that the pass has not ended (`handled-all`). A change's latency runs from the update's\n")
	fmt.Fprintf(&b, "response to the successor's first handler call that sees its value (a `change` log line written as\n")
	fmt.Fprintf(&b, "the call starts, only for changed objects); changes the apiserver accepted after the pass ended are left\n")
	fmt.Fprintf(&b, "out. rein FIFO is `bench/cmd/rein` built against rein at %s, the last commit before the priority queue;\n", fr.baseline)
	fmt.Fprintf(&b, "rein is this tree (%s): the start's keys queue low, watch events after sync high, low keys get every\n", fr.head)
	fmt.Fprintf(&b, "8th Get while high keys wait. controller-runtime v0.25.2 has `UsePriorityQueue` on by default (the\n")
	fmt.Fprintf(&b, "initial list's adds low, changes at priority 0); off, its queue is client-go's FIFO workqueue.\n\n")

	if pooled := fr.latencies["rein"]; len(pooled) > 0 {
		byRound := fr.res.byRound(freshP99, "rein")
		fmt.Fprintf(&b, "| target for rein | rein | result |\n|---|---|---|\n")
		fmt.Fprintf(&b, "| change → handler call p99 ≤ %d ms while the pass runs | %s ms over all %d changes (by round: %s) | %s |\n\n",
			freshTarget.Milliseconds(), num(percentile(pooled, 0.99)), len(pooled), roundList(byRound, " ms"), verdict(percentile(pooled, 0.99) <= float64(freshTarget.Milliseconds())))
	}

	b.WriteString("| run | p50 (ms) | p99 (ms) | all rounds' changes pooled: p50 / p99 / max (ms) | successor's pass (s) | changes in the pass |\n|---|---|---|---|---|---|\n")
	for _, n := range names {
		v := fr.res.values
		if len(v[freshP50][n]) == 0 {
			continue
		}
		pooled := fr.latencies[n]
		fmt.Fprintf(&b, "| %s | %s | %s | %s / %s / %s (n=%d) | %s | %d of %d |\n", fr.label(n), cell(v[freshP50][n]), cell(v[freshP99][n]),
			num(percentile(pooled, 0.5)), num(percentile(pooled, 0.99)), num(slices.Max(pooled)), len(pooled),
			cell(v[freshPass][n]), fr.made[n]-fr.late[n], fr.made[n])
	}
	b.WriteString("\nCells: median of the rounds (min–max, n); p50 and p99 are nearest-rank over a run's changes.\n\n")

	for _, fig := range fr.res.figures {
		b.WriteString(freshTable(fr, fig, names))
	}
	if f := fr.res.failed(); f != "" {
		b.WriteString(f + "\n")
	}
	b.WriteString("Versions: " + versions(binDir) + "; rein FIFO = rein at " + fr.baseline + "\n\n")
	b.WriteString("Machine: " + machine() + fmt.Sprintf("; load average (1 min) as the driver started and as it ended: %s, %s", fr.loadBefore, loadAverage()) + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench-fresh`, that is `cd bench && go run ./cmd/driver --scenarios fresh --frameworks rein,controller-runtime --repeats %d --objects %d --fresh-work %v --out ../docs/benchmarks.md`\n", repeats, objects, fr.work)
	fmt.Fprintf(&b, "(the driver builds rein FIFO itself: `--fifo-ref %s`, the commit's tree from `git archive` and `go build -modfile`\n", fr.baseline)
	b.WriteString("with bench's go.mod pointed at it).\n")
	b.WriteString(freshEnd + "\n")
	return b.String()
}

// freshTable is one figure's table: a row per run, its median and its
// values by round.
func freshTable(fr *fresh, fig string, names []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n\n| run | median (min–max, n) | by round |\n|---|---|---|\n", fig)
	rounds := map[int]bool{}
	for _, n := range names {
		for _, r := range fr.res.rounds[fig][n] {
			rounds[r] = true
		}
	}
	order := slices.Sorted(maps.Keys(rounds))
	for _, n := range names {
		v := fr.res.values[fig][n]
		if len(v) == 0 {
			continue
		}
		byRound := fr.res.byRound(fig, n)
		parts := make([]string, 0, len(order))
		for _, r := range order {
			if x, ok := byRound[r]; ok {
				parts = append(parts, num(x))
			} else {
				parts = append(parts, "—")
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", fr.label(n), cell(v), strings.Join(parts, ", "))
	}
	b.WriteString("\n")
	return b.String()
}

// loadAverage is the machine's 1-minute load average, from /proc/loadavg:
// on a shared machine, how busy the cores were besides the run.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
