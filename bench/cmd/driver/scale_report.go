package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The scale figures the targets and ratios read.
const (
	scaleRSS       = "peak RSS, all cached and marked (MiB)"
	scaleRate      = "mark all: objects/s after leading"
	scaleRateShare = "mark all: objects/s ÷ the client-go writer's, same round"
	scaleCPU       = "controller CPU per object, start → all marked (ms)"
)

// higherIsBetter tells the figures whose best value is the highest.
func higherIsBetter(figure string) bool { return strings.Contains(figure, "objects/s") }

// bestOf returns, of the frameworks in names, the one with the best median
// of figure, and that median.
func bestOf(res *results, figure string, names []string) (string, float64, bool) {
	name, val, found := "", 0.0, false
	for _, n := range names {
		v := res.values[figure][n]
		if len(v) == 0 {
			continue
		}
		m := median(v)
		if !found || (higherIsBetter(figure) && m > val) || (!higherIsBetter(figure) && m < val) {
			name, val, found = n, m, true
		}
	}
	return name, val, found
}

// addShares adds, for every framework but the client-go writer, its
// objects/s as a share of the client-go writer's in the same round.
func (sc *scale) addShares(names []string) {
	base := sc.res.byRound(scaleRate, clientGo.name)
	for _, n := range names {
		if n == clientGo.name {
			continue
		}
		byRound := sc.res.byRound(scaleRate, n)
		for _, round := range slices.Sorted(maps.Keys(byRound)) {
			if b, ok := base[round]; ok && b > 0 {
				sc.res.addRound(n, scaleRateShare, round, byRound[round]/b)
			}
		}
	}
}

func (d *driver) scaleReport(repeats, objects, workers int, binDir string, took time.Duration) string {
	sc := d.scale
	var names, peers []string
	for _, f := range scaleFrameworks() {
		names = append(names, f.name)
		if scalePeer(f.name) {
			peers = append(peers, f.name)
		}
	}
	sc.addShares(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## At scale: %d ConfigMaps of %d B\n\n", scaleBegin, objects, scaleDataBytes)
	if sc.state == nil {
		fmt.Fprintf(&b, "Written by `bench/cmd/driver --scenarios scale` on %s in %v. One namespace of %d ConfigMaps, each\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second), objects)
		fmt.Fprintf(&b, "with %d B of data, created once by the driver with 16 goroutines: **%v, %.0f objects/s**. Every run has a\n", scaleDataBytes, sc.created.Round(100*time.Millisecond), float64(objects)/sc.created.Seconds())
	} else {
		b.WriteString(sc.state.provenance(objects))
		fmt.Fprintf(&b, "One namespace of %d ConfigMaps, each with %d B of data, created once per invocation by the driver with 16\n", objects, scaleDataBytes)
		fmt.Fprintf(&b, "goroutines (times above; objects/s: %s). Every run has a\n", sc.state.createRates(objects))
	}
	fmt.Fprintf(&b, "Lease and a mark of its own; %d workers, lease %v / renew deadline %v / retry %v, JSON merge patch; %d rounds\n", workers, leaseDuration, renewDeadline, retryPeriod, repeats)
	fmt.Fprintf(&b, "with the frameworks interleaved. rein runs in three settings: its default; `drop-data`, a cache transform\n")
	fmt.Fprintf(&b, "(`framework.Options.CachePerKind`) that drops each ConfigMap's data; `metadata`, a metadata-only controller\n")
	fmt.Fprintf(&b, "(`generic.NewMetadataController`). The peers run their default setting; controller-runtime also metadata-only\n")
	fmt.Fprintf(&b, "(`builder.OnlyMetadata`). `client-go` is `bench/cmd/clientgo`: one shared informer, a workqueue and %d goroutines\n", workers)
	fmt.Fprintf(&b, "sending the same patch, no framework, no election: the bare writer every objects/s is held against.\n\n")
	fmt.Fprintf(&b, "- **sync**: one replica from its start to its `synced` line (rein: start's readiness wait over, caches\n")
	fmt.Fprintf(&b, "  synced and every key queued; the others: the informer's HasSynced, polled every 10 ms); its CPU seconds and\n")
	fmt.Fprintf(&b, "  peak RSS then, from /proc (read within 20 ms of the line).\n")
	fmt.Fprintf(&b, "- **mark all**: the same replica marks every ConfigMap; from its `leading` line to its last write (audit\n")
	fmt.Fprintf(&b, "  log); its CPU seconds and peak RSS once all are marked, from its start. RSS per object is that peak ÷ %d.\n", objects)
	fmt.Fprintf(&b, "- **takeover**: a standby with the same mark joins (rein and controller-runtime with warmup cache before\n")
	fmt.Fprintf(&b, "  they lead: the driver waits for its `synced` line; wrangler and controller-runtime without warmup cache\n")
	fmt.Fprintf(&b, "  nothing until they lead: it gets %v), the leader is killed (SIGKILL); the successor's winning → first\n", standbySettle)
	fmt.Fprintf(&b, "  reconcile, and winning → its handler called for every key (all marked already: a call and no write).\n")
	fmt.Fprintf(&b, "  Its peak RSS includes the set of keys the program keeps to tell when all were handled.\n\n")
	fmt.Fprintf(&b, "Cells: median (min–max, n); \"by round\" in round order; the last column divides by the best peer's median\n")
	fmt.Fprintf(&b, "(%s: the lowest, or for objects/s the highest).\n\n", strings.Join(peers, ", "))
	if slices.Contains(names, "rein") && len(peers) > 0 {
		b.WriteString(d.scaleTargets(objects, peers))
	}
	if s := sc.standbys(names); s != "" {
		b.WriteString("Standby caches when the leader was killed: " + s + ".\n\n")
	}
	figures := slices.DeleteFunc(slices.Clone(sc.res.figures), func(f string) bool { return f == scaleRateShare })
	if i := slices.Index(figures, scaleRate); i >= 0 && len(sc.res.values[scaleRateShare]) > 0 {
		figures = slices.Insert(figures, i+1, scaleRateShare)
	}
	for _, fig := range figures {
		b.WriteString(scaleTable(sc.res, fig, names, peers))
	}
	if f := sc.res.failed(); f != "" {
		b.WriteString(f + "\n")
	}
	b.WriteString("Versions: " + versions(binDir) + "\n\n")
	b.WriteString("Machine: " + machine() + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench-scale`, that is `cd bench && go run ./cmd/driver --scenarios scale --repeats %d --objects %d --out ../docs/benchmarks.md`\n", repeats, objects)
	fmt.Fprintf(&b, "(`make bench-scale SCALE_STATE=FILE` keeps complete rounds in FILE and goes on from them when started again).\n")
	b.WriteString(scaleEnd + "\n")
	return b.String()
}

// scaleTable is one figure's table: a row per framework, its values by
// round, and its median divided by the best peer's.
func scaleTable(res *results, fig string, names, peers []string) string {
	var b strings.Builder
	peer, best, ok := bestOf(res, fig, peers)
	ratioHead := "÷ best peer"
	if ok {
		ratioHead = fmt.Sprintf("÷ best peer (%s)", peer)
	}
	fmt.Fprintf(&b, "**%s**\n\n| framework | median (min–max, n) | by round | %s |\n|---|---|---|---|\n", fig, ratioHead)
	rounds := map[int]bool{}
	for _, n := range names {
		for _, r := range res.rounds[fig][n] {
			rounds[r] = true
		}
	}
	order := slices.Sorted(maps.Keys(rounds))
	for _, n := range names {
		v := res.values[fig][n]
		if len(v) == 0 {
			continue
		}
		byRound := res.byRound(fig, n)
		parts := make([]string, 0, len(order))
		for _, r := range order {
			if x, ok := byRound[r]; ok {
				parts = append(parts, num(x))
			} else {
				parts = append(parts, "—")
			}
		}
		ratio := "—"
		if ok && best != 0 {
			ratio = num(median(v)/best) + "×"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", n, cell(v), strings.Join(parts, ", "), ratio)
	}
	b.WriteString("\n")
	return b.String()
}

// standbys says, per framework with an election, whether its standbys had
// synced when their leader was killed.
func (sc *scale) standbys(names []string) string {
	var parts []string
	for _, n := range names {
		w := sc.warm[n]
		if len(w) == 0 {
			continue
		}
		warm := 0
		for _, x := range w {
			if x {
				warm++
			}
		}
		switch warm {
		case len(w):
			parts = append(parts, n+" warm (synced)")
		case 0:
			parts = append(parts, n+" cold (no cache yet)")
		default:
			parts = append(parts, fmt.Sprintf("%s warm in %d of %d runs", n, warm, len(w)))
		}
	}
	return strings.Join(parts, ", ")
}

// scaleTargets checks rein's figures against the scale targets: memory
// against the leanest peer, the takeover's first reconcile, objects/s
// against the client-go writer of the same round, and CPU per object
// against the best peer of every round.
func (d *driver) scaleTargets(objects int, peers []string) string {
	res := d.scale.res
	v := res.values
	var b strings.Builder
	b.WriteString("| target for rein | rein | against | result |\n|---|---|---|---|\n")
	row := func(target, rein, against string, ok bool) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", target, rein, against, verdict(ok))
	}
	if peer, pv, ok := bestOf(res, scaleRSS, peers); ok {
		for _, t := range []struct {
			fw, target string
			limit      float64
		}{
			{"rein", "peak RSS ≤ 0.8× the leanest peer", 0.8},
			{"rein+drop-data", "drop-data: peak RSS (no target; for scale)", 0},
			{"rein+metadata", "metadata-only: peak RSS ≤ 0.3× the leanest peer", 0.3},
		} {
			if x := v[scaleRSS][t.fw]; len(x) > 0 {
				q := median(x) / pv
				against := fmt.Sprintf("%s MiB (%s): %s×", num(pv), peer, num(q))
				if t.limit == 0 {
					fmt.Fprintf(&b, "| %s | %s MiB | %s | — |\n", t.target, num(median(x)), against)
					continue
				}
				row(t.target, num(median(x))+" MiB", against, q <= t.limit)
			}
		}
	}
	fig := fmt.Sprintf("takeover: winning → first reconcile, %d cached (ms)", objects)
	if x := v[fig]["rein"]; len(x) > 0 {
		against := "—"
		if peer, pv, ok := bestOf(res, fig, peers); ok {
			against = fmt.Sprintf("%s ms (%s)", num(pv), peer)
		}
		row(fmt.Sprintf("winning → first reconcile ≤ 10 ms with %d cached", objects), fmt.Sprintf("%s ms (max %s)", num(median(x)), num(slices.Max(x))), against, median(x) <= 10)
	}
	if x := v[scaleRateShare]["rein"]; len(x) > 0 {
		cg := v[scaleRate][clientGo.name]
		row("objects/s ≥ 0.9× the bare client-go writer's, same round",
			fmt.Sprintf("%s× (by round: %s)", num(median(x)), roundList(res.byRound(scaleRateShare, "rein"), "×")),
			fmt.Sprintf("client-go %s objects/s", num(median(cg))), median(x) >= 0.9)
	}
	if ratios := perRoundRatio(res, scaleCPU, "rein", peers); len(ratios) > 0 {
		worst := 0.0
		for _, q := range ratios {
			worst = max(worst, q)
		}
		r := v[scaleCPU]["rein"]
		row("controller CPU per object ≤ 0.7× the best peer, in every round",
			fmt.Sprintf("%s ms per object; ÷ the round's best peer: %s", num(median(r)), roundList(ratios, "×")),
			fmt.Sprintf("by round: %s", bestByRound(res, scaleCPU, peers)), worst <= 0.7)
	}
	b.WriteString("\n")
	return b.String()
}

// perRoundRatio divides fw's value of figure in each round by the best
// (lowest) peer value of the same round.
func perRoundRatio(res *results, figure, fw string, peers []string) map[int]float64 {
	out := map[int]float64{}
	for round, x := range res.byRound(figure, fw) {
		best, found := 0.0, false
		for _, p := range peers {
			if pv, ok := res.byRound(figure, p)[round]; ok && (!found || pv < best) {
				best, found = pv, true
			}
		}
		if found && best > 0 {
			out[round] = x / best
		}
	}
	return out
}

// bestByRound lists the lowest peer value of figure in each round, and whose.
func bestByRound(res *results, figure string, peers []string) string {
	type best struct {
		name string
		v    float64
	}
	byRound := map[int]best{}
	for _, p := range peers {
		for round, v := range res.byRound(figure, p) {
			if b, ok := byRound[round]; !ok || v < b.v {
				byRound[round] = best{p, v}
			}
		}
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(byRound)) {
		parts = append(parts, fmt.Sprintf("%s (%s)", num(byRound[r].v), byRound[r].name))
	}
	return strings.Join(parts, ", ")
}

// roundList lists values by round, in round order, each with unit.
func roundList(byRound map[int]float64, unit string) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(byRound)) {
		parts = append(parts, num(byRound[r])+unit)
	}
	return strings.Join(parts, ", ")
}
