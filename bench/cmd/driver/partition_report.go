package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// partitionTarget is issue 30's bound on a partitioned replica's memory
// and CPU, as a share of a full cache's replica's.
const partitionTarget = 0.3

// partitionTakeoverSlack is issue 30's bound on the takeover of a killed
// replica's shards, past the lease duration.
const partitionTakeoverSlack = 3 * time.Second

func (d *driver) partitionReport(repeats, objects, workers int, binDir string, took time.Duration) string {
	pt := d.part
	var names []string
	for _, v := range pt.variants {
		names = append(names, v.name)
	}
	base := names[0]
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Partitioned caches: %d ConfigMaps over %d sharded replicas\n\n", partitionBegin, objects, pt.replicas)
	fmt.Fprintf(&b, "Written by `bench/cmd/driver --scenarios partition` on %s in %v. One namespace of %d ConfigMaps, each with\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second), objects)
	fmt.Fprintf(&b, "%d B of data (the scale scenario's), created once by the driver with 16 goroutines (%v). %d rein processes\n", scaleDataBytes, pt.created.Round(100*time.Millisecond), pt.replicas)
	fmt.Fprintf(&b, "(`bench/cmd/rein`, the marks controller) form one sharded group of %d shards, %d workers each, lease %v / renew\n", pt.shards, workers, leaseDuration)
	fmt.Fprintf(&b, "deadline %v / retry %v, JSON merge patch; the apiserver runs with `--feature-gates=ShardedListAndWatch=true`.\n", renewDeadline, retryPeriod)
	fmt.Fprintf(&b, "%d shards split evenly over the %d replicas and over the %d left after the kill, with few per-shard lists and\n", pt.shards, pt.replicas, pt.replicas-1)
	fmt.Fprintf(&b, "watches (a partitioned replica has one per held shard, and the apiserver hashes its whole watch cache for\n")
	fmt.Fprintf(&b, "each sharded list). Variants: %s. Every run has a mark and a shard group of its own;\n", partitionVariantList(pt.variants, pt.shards))
	fmt.Fprintf(&b, "%s, the variants interleaved (each round starts with the next).\n\n", plural(repeats, "1 round", fmt.Sprintf("%d rounds", repeats)))
	fmt.Fprintf(&b, "- **start → all reconciled**: the replicas start at once; from the first start to the last successful write of\n")
	fmt.Fprintf(&b, "  the run's mark (audit log). Each replica's CPU seconds and peak RSS (VmHWM, /proc) as the driver's watch\n")
	fmt.Fprintf(&b, "  sees every object marked; apiserver + etcd CPU over the same time.\n")
	if pt.idle > 0 {
		fmt.Fprintf(&b, "- **no changes**: after the initial pass, %v without changes; each replica's CPU over it, in %% of one core:\n", pt.idle)
		fmt.Fprintf(&b, "  what a replica spends with nothing to do, which no cache saves.\n")
	}
	if pt.rate > 0 {
		fmt.Fprintf(&b, "- **steady changes**: %s changes/s for %v (%d changes), each removing the mark of an object picked at random,\n", flagFloat(pt.rate), pt.window, min(int(pt.rate*pt.window.Seconds()), objects))
		fmt.Fprintf(&b, "  which the holder of its shard writes back; each replica's CPU from the first change until the driver sees\n")
		fmt.Fprintf(&b, "  every object marked again, in %% of one core. A full cache's replica receives every change; a partitioned one\n")
		fmt.Fprintf(&b, "  those of its shards.\n")
	}
	sample := "every object"
	if pt.sample > 0 {
		sample = fmt.Sprintf("%d objects", pt.sample)
	}
	fmt.Fprintf(&b, "- **takeover**: the replica holding the most shards is killed (SIGKILL) and at once the driver removes the\n")
	fmt.Fprintf(&b, "  mark of %s of its shards, picked at random (a full cache's group places a key by its name, shard.Of;\n", sample)
	fmt.Fprintf(&b, "  a partitioned one by its UID). The survivors take its shards once its member Lease has not been renewed\n")
	fmt.Fprintf(&b, "  for the lease duration (a partitioned survivor first lists each taken shard: cold; a full one has every\n")
	fmt.Fprintf(&b, "  object cached) and write the marks back. Figures: the kill → the last of its shards held by another; the kill\n")
	fmt.Fprintf(&b, "  → the last of those writes (audit log), and the same from the killed member's last renew, which is\n")
	fmt.Fprintf(&b, "  what the lease counts from (the kill comes up to a retry period later).\n\n")
	b.WriteString(d.partitionTargets(base))
	fmt.Fprintf(&b, "| figure | %s |", strings.Join(names, " | "))
	for _, n := range names[1:] {
		fmt.Fprintf(&b, " %s ÷ %s |", n, base)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", 2*len(names)-1) + "\n")
	for _, fig := range pt.res.figures {
		fmt.Fprintf(&b, "| %s |", fig)
		for _, n := range names {
			fmt.Fprintf(&b, " %s |", cell(pt.res.values[fig][n]))
		}
		bv := pt.res.values[fig][base]
		for _, n := range names[1:] {
			v := pt.res.values[fig][n]
			if len(v) == 0 || len(bv) == 0 || median(bv) == 0 {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %s× |", num(median(v)/median(bv)))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nCells: median (min–max, n); figures \"per replica\" have a value per replica and round (%d a round, %d after the\n", pt.replicas, pt.replicas-1)
	b.WriteString("kill), the others one a round; the ratios divide medians.\n\n")
	if f := pt.res.failed(); f != "" {
		b.WriteString(f + "\n")
	}
	b.WriteString("Versions: " + versions(binDir) + "\n\n")
	b.WriteString("Machine: " + machine() + fmt.Sprintf("; load average (1 min) as the driver started and as it ended: %s, %s", pt.loadBefore, loadAverage()) + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench-partition`, that is `cd bench && go run ./cmd/driver --scenarios partition --repeats %d --objects %d --partition-variants %s --partition-replicas %d --partition-shards %d --partition-rate %s --partition-window %v --partition-idle %v --partition-sample %d --out ../docs/benchmarks.md`.\n",
		repeats, objects, strings.Join(names, ","), pt.replicas, pt.shards, flagFloat(pt.rate), pt.window, pt.idle, pt.sample)
	b.WriteString(partitionEnd + "\n")
	return b.String()
}

// partitionVariantList describes the variants run.
func partitionVariantList(vs []partitionVariant, shards int) string {
	var parts []string
	for _, v := range vs {
		flags := append([]string{fmt.Sprintf("--shards %d", shards)}, v.args...)
		if v.fixed() {
			flags = []string{"bench/cmd/clientgo --uid-range i/n"}
		}
		what := ""
		switch v.name {
		case "full":
			what = ": every replica caches every object"
		case "partitioned":
			what = ": each replica lists and watches the objects of the shards it holds, one watch per shard"
		case "warm-next":
			what = ": partitioned, and each replica keeps the shards it would take next warm"
		case "floor":
			what = ": bare client-go writers, process i listing and watching the i-th of n equal ranges of the UID hash with one watch, no lease, no shard protocol and no takeover; what any partitioned replica spends at the least"
		}
		parts = append(parts, fmt.Sprintf("%s (`%s`%s)", v.name, strings.Join(flags, " "), what))
	}
	return strings.Join(parts, "; ")
}

// partitionTargets states issue 30's targets against the medians: the
// partitioned variant's memory and CPU against the full caches' (when
// base is full), and its takeover against the lease; warm-next's figures
// beside them, its takeover also against the cold one.
func (d *driver) partitionTargets(base string) string {
	pt := d.part
	v := pt.res.values
	var lines []string
	if base == "full" && slices.ContainsFunc(pt.variants, partitionVariant.fixed) {
		// The floor against full caches: where it is above the target,
		// no partitioned implementation meets it on this machine.
		for _, fig := range []string{partRSS, partCPU, partSteadyCPU} {
			x, f, p := v[fig]["floor"], v[fig][base], v[fig]["partitioned"]
			if len(x) == 0 || len(f) == 0 || median(f) == 0 || median(x) == 0 {
				continue
			}
			q := median(x) / median(f)
			reach := "out of reach of any partitioned replica here"
			if q <= partitionTarget {
				reach = "within reach"
			}
			line := fmt.Sprintf("- floor, %s: %s× full: the target ≤ %s× is %s", fig, num(q), num(partitionTarget), reach)
			if len(p) > 0 {
				line += fmt.Sprintf("; partitioned is %s× the floor", num(median(p)/median(x)))
			}
			lines = append(lines, line)
		}
	}
	for _, variant := range pt.variants {
		if !variant.partitioned() {
			continue
		}
		n := variant.name
		// The targets are the for partitioned caches; warm-next
		// is an option whose cost and takeover are reported beside them.
		cold := n == "partitioned"
		if base == "full" {
			for _, fig := range []string{partRSS, partCPU, partSteadyCPU} {
				x, f := v[fig][n], v[fig][base]
				if len(x) == 0 || len(f) == 0 || median(f) == 0 {
					continue
				}
				q := median(x) / median(f)
				worst := ""
				if fig == partRSS {
					worst = fmt.Sprintf("; the largest replica %s×", num(slices.Max(x)/median(f)))
				}
				if !cold {
					lines = append(lines, fmt.Sprintf("- %s, %s: %s× full (the option's cost, no target%s)", n, fig, num(q), worst))
					continue
				}
				lines = append(lines, fmt.Sprintf("- %s, %s: %s× full (target ≤ %s×: %s%s)", n, fig, num(q), num(partitionTarget), verdict(q <= partitionTarget), worst))
			}
		}
		if base == "full" {
			// The steady CPU above the idle CPU: the part that depends on
			// the changes, which a smaller cache can save.
			xs, xi, fs, fi := v[partSteadyCPU][n], v[partIdleCPU][n], v[partSteadyCPU][base], v[partIdleCPU][base]
			if len(xs) > 0 && len(xi) > 0 && len(fs) > 0 && len(fi) > 0 && median(fs) > median(fi) {
				x, f := median(xs)-median(xi), median(fs)-median(fi)
				lines = append(lines, fmt.Sprintf("- %s, steady changes less no changes (medians): %s %% of a core against %s %%: %s× full (idle %s %% against %s %%)", n, num(x), num(f), num(x/f), num(median(xi)), num(median(fi))))
			}
		}
		if x := v[partKill][n]; len(x) > 0 {
			limit := (leaseDuration + partitionTakeoverSlack).Seconds()
			against := ""
			if c := v[partKill]["partitioned"]; !cold && len(c) > 0 {
				against = fmt.Sprintf("; cold (partitioned) %s s", num(median(c)))
			}
			// Two decimals: a median just past the bound must not read as
			// equal to it.
			lines = append(lines, fmt.Sprintf("- %s, %s: %.2f s, max %.2f s (target ≤ lease + %v = %s s: %s%s)", n, partKill, median(x), slices.Max(x), partitionTakeoverSlack, num(limit), verdict(median(x) <= limit), against))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "Targets (issue 30), from the medians below:\n\n" + strings.Join(lines, "\n") + "\n\n"
}
