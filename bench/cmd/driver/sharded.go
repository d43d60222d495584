package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/pkg/shard"
)

const shardedBegin, shardedEnd = "<!-- bench-sharded:begin -->", "<!-- bench-sharded:end -->"

// shardCount is the shard count of the sharded runs: 60 splits evenly
// over 1, 3 and 5 replicas, so that every replica holds as many shards
// (with 64, the replica holding 22 of 3 × 21.3 would set the pace: 3%).
const shardCount = common.PartitionShards

// shardedConfig is one row of the sharded scenario: a framework run as
// replicas processes (shards 0: one leader).
type shardedConfig struct {
	name     string
	fw       framework
	replicas int
	shards   int
	// fixed: rein processes that split the keys by a fixed rule
	// (--partition i/n) with no protocol: the ceiling for sharding.
	fixed bool
}

// shardedReplicas, when set (--sharded-replicas), keeps only the
// configurations with these replica counts.
var shardedReplicas []int

func shardedConfigs() (out []shardedConfig) {
	byName := map[string]framework{}
	for _, f := range frameworks {
		byName[f.name] = f
	}
	defer func() {
		if len(shardedReplicas) > 0 {
			out = slices.DeleteFunc(out, func(c shardedConfig) bool { return !slices.Contains(shardedReplicas, c.replicas) })
		}
	}()
	if f, ok := byName["rein"]; ok {
		out = append(out,
			shardedConfig{"rein, 1 replica, sharded", f, 1, shardCount, false},
			shardedConfig{"rein, 3 replicas, sharded", f, 3, shardCount, false},
			shardedConfig{"rein, 5 replicas, sharded", f, 5, shardCount, false},
			shardedConfig{"rein, 3 processes, fixed split (no protocol)", f, 3, 0, true},
			shardedConfig{"rein, 5 processes, fixed split (no protocol)", f, 5, 0, true},
			shardedConfig{"rein, 3 replicas, one leader", f, 3, 0, false})
	}
	for _, n := range []string{"wrangler", "controller-runtime"} {
		if f, ok := byName[n]; ok {
			out = append(out, shardedConfig{n + ", one leader (by construction)", f, 1, 0, false})
		}
	}
	return out
}

// shardedRun starts cfg's processes at once, each with the handler delay,
// and measures from the first start to the last successful write of the
// run's mark. With rein sharded over 3 replicas and the delay, it then
// measures the idle load, a SIGTERM handoff and a SIGKILL takeover.
func (d *driver) shardedRun(cfg shardedConfig, delay time.Duration, round int) {
	tag := fmt.Sprintf("sharded-%d-%s-%d-%dms", round, strings.ReplaceAll(cfg.fw.name, "+", "-"), cfg.replicas, delay.Milliseconds())
	switch {
	case cfg.fixed:
		tag += "-fixed"
	case cfg.shards == 0 && cfg.fw.name == "rein":
		tag += "-leader"
	}
	d.guard(cfg.fw, round, "sharded", func(r *run) {
		r.tag = tag
		r.extra = []string{"--delay", delay.String()}
		if cfg.shards > 0 {
			r.extra = append(r.extra, "--shards", strconv.Itoa(cfg.shards))
		}
		controlBefore := cpuOf(d.control...)
		base := r.extra
		var procs []*proc
		for i := range cfg.replicas {
			if cfg.fixed {
				// Each its own Lease, so that each leads at once, and its
				// fixed part of the keys.
				r.extra = append(slices.Clip(base), "--partition", fmt.Sprintf("%d/%d", i, cfg.replicas), "--lease-name", fmt.Sprintf("%s-%d", tag, i))
			}
			procs = append(procs, r.startProc("r"+strconv.Itoa(i), tag))
		}
		r.extra = base
		t0 := procs[0].started
		if d.profDir != "" {
			go d.profileAPIServer(filepath.Join(d.profDir, tag+".apiserver.pprof"), 3*time.Second, 8)
		}
		if !d.st.allMarked(tag, d.objects, r.timeout()+time.Duration(d.objects)*delay) {
			panic("not all marked in time")
		}
		var last time.Time
		writers := 0
		var firsts []float64
		for _, p := range procs {
			if w := d.lastWrite(r.offset, p.ua); !w.IsZero() {
				writers++
				if w.After(last) {
					last = w
				}
			}
			if f, ok := d.firstWrite(r.offset, p.ua, 0); ok {
				firsts = append(firsts, f.Sub(p.started).Seconds())
			}
		}
		control := cpuOf(d.control...) - controlBefore
		var controllers float64
		for _, p := range procs {
			cpu, _ := p.usage()
			controllers += cpu
		}
		kind := map[bool]string{true: "handler waits", false: "no wait"}[delay > 0]
		d.sharded.add(cfg.name, kind+": controllers' CPU seconds (all replicas)", controllers)
		d.sharded.add(cfg.name, kind+": apiserver + etcd CPU seconds", control)
		if len(firsts) > 0 && (cfg.shards > 0 || cfg.fixed) {
			d.sharded.add(cfg.name, fmt.Sprintf("%s: a replica's start → its first write, slowest (s)", map[bool]string{true: "handler waits", false: "no wait"}[delay > 0]), slices.Max(firsts))
		}
		figure := fmt.Sprintf("handler waits %v: start → all %d written (s)", delay, d.objects)
		if delay == 0 {
			figure = fmt.Sprintf("no wait (apiserver-bound): start → all %d written (s)", d.objects)
		}
		d.sharded.add(cfg.name, figure, last.Sub(t0).Seconds())
		logf("%s: all written %.2fs after the first start, by %d of %d processes", tag, last.Sub(t0).Seconds(), writers, cfg.replicas)
		if cfg.replicas > 1 {
			// Each replica's share and when it finished: a late finisher
			// is an uneven split or a slow start.
			logf("%s: %s", tag, writeShares(d.writesByUA(r.offset), procs, t0))
		}
		if cfg.shards > 0 && cfg.replicas == 3 && delay > 0 {
			d.shardMoves(r, cfg, procs)
		}
	})
}

// shardMoves measures, on a sharded group of three that has written
// everything: each replica's requests in an idle window; a SIGTERM (the
// last of its shards handed on, from the signal); a SIGKILL (the last of
// its shards taken over, from its last renew).
func (d *driver) shardMoves(r *run, cfg shardedConfig, procs []*proc) {
	records := make([]string, cfg.shards)
	for s := range records {
		records[s] = shard.RecordName(r.tag, s)
	}
	identity := func(p *proc) string { return d.st.identityOf(records, p.name) }
	time.Sleep(2 * time.Second) // past the last writes
	from := time.Now()
	time.Sleep(d.idle)
	to := time.Now()
	time.Sleep(time.Second)
	counts := d.requests(r.offset, from, to)
	for _, p := range procs {
		d.sharded.add(cfg.name, "idle: requests/s per replica", float64(uaCount(counts, p.ua))/to.Sub(from).Seconds())
	}

	// SIGTERM: every shard of procs[0] handed on.
	id := identity(procs[0])
	held := d.st.heldBy(records, id)
	t0 := time.Now()
	must(procs[0].cmd.Process.Signal(syscall.SIGTERM))
	last, ok := d.st.movedAfter(held, id, t0, time.Minute)
	if !ok || len(held) == 0 {
		panic(fmt.Sprintf("SIGTERM: %d shards of %s not handed on", len(held), id))
	}
	d.sharded.add(cfg.name, "SIGTERM: signal → last of its shards held by another (ms)", last.Sub(t0).Seconds()*1000)

	// SIGKILL: procs[1]'s shards taken over after the lease duration.
	id = identity(procs[1])
	held = d.st.heldBy(records, id)
	killed := time.Now()
	must(procs[1].cmd.Process.Kill())
	last, ok = d.st.movedAfter(held, id, killed, 2*time.Minute)
	if !ok || len(held) == 0 {
		panic(fmt.Sprintf("SIGKILL: %d shards of %s not taken over", len(held), id))
	}
	renew := d.st.lastRenew(shard.MemberLeaseName(r.tag, id))
	d.sharded.add(cfg.name, fmt.Sprintf("SIGKILL: last renew → last of its shards taken over (ms; lease %v)", leaseDuration), last.Sub(renew).Seconds()*1000)
	logf("%s: handoff on SIGTERM and takeover on SIGKILL measured", r.tag)
}

func (d *driver) shardedReport(repeats, objects, workers int, delay time.Duration, binDir string, took time.Duration) string {
	var b strings.Builder
	cfgs := shardedConfigs()
	fmt.Fprintf(&b, "%s\n## Sharded active-active: more replicas, more work done\n\n", shardedBegin)
	fmt.Fprintf(&b, "Written by `bench/cmd/driver --scenarios sharded` on %s in %v. The marks controller of the side-by-side\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second))
	fmt.Fprintf(&b, "section, with a handler that first waits %v (a simulated call to a slow external system: cloud API,\n", delay)
	fmt.Fprintf(&b, "DNS, storage), then writes once; and again without the wait, where the apiserver is the limit. %d ConfigMaps,\n", objects)
	fmt.Fprintf(&b, "%d workers per process, lease %v / renew deadline %v / retry %v, rein sharded over %d shards;\n", workers, leaseDuration, renewDeadline, retryPeriod, shardCount)
	fmt.Fprintf(&b, "all processes of a run start at once, and the time is from the first start to the last successful\n")
	fmt.Fprintf(&b, "write (audit log). wrangler and controller-runtime elect one leader, so more replicas do not add\n")
	fmt.Fprintf(&b, "workers: they run as one process. \"fixed split\" is rein's processes with no protocol: each leads a Lease of its own\n")
	fmt.Fprintf(&b, "and works the keys whose shard is its index modulo the process count (bench/cmd/rein --partition), the\n")
	fmt.Fprintf(&b, "ceiling any sharding protocol has here. %d rounds, configurations interleaved. Cells: median (min–max, n).\n\n", repeats)
	b.WriteString(d.shardedTargets(cfgs, delay))
	var names []string
	for _, c := range cfgs {
		names = append(names, c.name)
	}
	b.WriteString("| figure | " + strings.Join(names, " | ") + " |\n|---|" + strings.Repeat("---|", len(names)) + "\n")
	for _, fig := range d.sharded.figures {
		fmt.Fprintf(&b, "| %s |", fig)
		for _, n := range names {
			fmt.Fprintf(&b, " %s |", cell(d.sharded.values[fig][n]))
		}
		b.WriteString("\n")
	}
	if f := d.sharded.failed(); f != "" {
		b.WriteString("\n" + f)
	}
	b.WriteString("\nVersions: " + versions(binDir) + "\n\n")
	b.WriteString("Machine: " + machine() + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench-shards`, that is `cd bench && go run ./cmd/driver --scenarios sharded --repeats %d --objects %d --delay %v --out ../docs/benchmarks.md`.\n", repeats, objects, delay)
	b.WriteString(shardedEnd + "\n")
	return b.String()
}

// shardedTargets states issue 14's targets against the medians.
func (d *driver) shardedTargets(cfgs []shardedConfig, delay time.Duration) string {
	fig := func(prefix string) string {
		for _, f := range d.sharded.figures {
			if strings.HasPrefix(f, prefix) {
				return f
			}
		}
		return ""
	}
	med := func(figure, name string) (float64, bool) {
		v := d.sharded.values[figure][name]
		if len(v) == 0 {
			return 0, false
		}
		return median(v), true
	}
	var lines []string
	wait := fig(fmt.Sprintf("handler waits %v", delay))
	one, ok1 := med(wait, "rein, 1 replica, sharded")
	for _, c := range []struct {
		name   string
		target float64
	}{{"rein, 3 replicas, sharded", 2.7}, {"rein, 5 replicas, sharded", 4.3}} {
		if v, ok := med(wait, c.name); ok && ok1 && v > 0 {
			speed := one / v
			lines = append(lines, fmt.Sprintf("- %s: %s× the speed of one replica (target ≥ %.1f×: %s)", c.name, num(speed), c.target, met(speed >= c.target)))
		}
	}
	for _, n := range []int{3, 5} {
		name := fmt.Sprintf("rein, %d processes, fixed split (no protocol)", n)
		if v, ok := med(wait, name); ok && ok1 && v > 0 {
			lines = append(lines, fmt.Sprintf("- %s: %s× the speed of one replica (no target: the ceiling any protocol has on this machine, as the same processes split the keys by a fixed rule)", name, num(one/v)))
		}
	}
	if v, ok := med(fig("idle:"), "rein, 3 replicas, sharded"); ok {
		lines = append(lines, fmt.Sprintf("- idle requests/s per replica: %s (target ≤ 0.5: %s)", num(v), met(v <= 0.5+1e-9)))
	}
	if v, ok := med(fig("SIGTERM:"), "rein, 3 replicas, sharded"); ok {
		lines = append(lines, fmt.Sprintf("- graceful handoff, signal → last shard held by another: %s ms (target ≤ 100 ms per shard after its drain: %s)", num(v), met(v <= 100)))
	}
	if v, ok := med(fig("SIGKILL:"), "rein, 3 replicas, sharded"); ok {
		budget := float64(leaseDuration.Milliseconds()) + 150
		lines = append(lines, fmt.Sprintf("- takeover, last renew → last shard taken: %s ms (target ≤ lease + 150 ms = %s ms: %s)", num(v), num(budget), met(v <= budget)))
	}
	if len(lines) == 0 {
		return ""
	}
	slices.Sort(lines)
	return "Targets (issue 14), from the medians below:\n\n" + strings.Join(lines, "\n") + "\n\n"
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// writeShares says each of procs' writes in all and when its first and
// last were, from t0: a late finisher is an uneven split or a slow start.
func writeShares(all map[string]*writes, procs []*proc, t0 time.Time) string {
	var parts []string
	for _, p := range procs {
		w := all[p.ua]
		if w == nil {
			parts = append(parts, p.name+": 0 writes") // a standby of one leader
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %d writes, first %.2fs, last %.2fs", p.name, w.count, w.first.Sub(t0).Seconds(), w.last.Sub(t0).Seconds()))
	}
	return strings.Join(parts, "; ")
}
