package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rein-k8s/rein/internal/testkit/otlptest"
)

const tracingBegin, tracingEnd = "<!-- bench-tracing:begin -->", "<!-- bench-tracing:end -->"

// tracingConfig is one setting of the tracing scenario: rein's marks
// controller with these OTEL_* variables (none: tracing off).
type tracingConfig struct {
	name string
	env  []string
}

// tracingConfigs are the settings compared: off, every trace kept, and
// one root in a hundred (parent-based, as a production setting would be).
// The endpoint is the driver's receiver, added by tracingRun.
func tracingConfigs() []tracingConfig {
	return []tracingConfig{
		{"off", nil},
		{"sampling 1.0", []string{"OTEL_TRACES_SAMPLER=always_on"}},
		{"parent-based 0.01", []string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.01"}},
	}
}

// tracing is the tracing scenario's receiver and results.
type tracing struct {
	recv       *otlptest.Receiver
	res        *results
	loadBefore string
	loadAfter  string
}

// tracingRun is the throughput run of rein's marks controller under c:
// one replica marks every ConfigMap. Its spans go to the driver's OTLP
// receiver over gRPC, which counts and drops them.
func (d *driver) tracingRun(c tracingConfig) func(*run) {
	return func(r *run) {
		if c.env != nil {
			r.env = append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + d.tracing.recv.GRPCURL(), "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, c.env...)
		}
		spansBefore := d.tracing.recv.Count()
		controlBefore := cpuOf(d.control...)
		p := r.startProc("r0", r.tag)
		// The CPU of start-up (the cache's list, the exporter's set-up)
		// is paid once per process; the CPU after leading is the
		// reconciles', which tracing adds to per object. The log is read
		// every 20 ms: a few reconciles may fall before the reading, in
		// every setting alike.
		if _, ok := p.awaitLog("leading", r.timeout()); !ok {
			panic("no leading line")
		}
		cpuAtLeading := cpuSeconds(p.cmd.Process.Pid)
		m := d.awaitMarked(r, p, d.st, d.objects, controlBefore)
		if d.profDir != "" {
			// the controller writes its profile 12 s after its start
			time.Sleep(time.Until(p.started.Add(13 * time.Second)))
		}
		res := d.tracing.res
		res.addRound(c.name, "objects/s after leading", r.round, m.perSecond)
		res.addRound(c.name, "controller CPU seconds", r.round, m.cpu)
		res.addRound(c.name, "controller CPU ms per object", r.round, m.cpu*1000/float64(d.objects))
		res.addRound(c.name, "controller CPU seconds after leading (the reconciles)", r.round, m.cpu-cpuAtLeading)
		res.addRound(c.name, "peak RSS (MiB)", r.round, m.hwm/(1<<20))
		// Spans exported by the time every object was marked (the batch
		// processor sends every 5 s or 512 spans, so the last ones are
		// still buffered).
		res.addRound(c.name, "spans received by the last mark", r.round, float64(d.tracing.recv.Count()-spansBefore))
	}
}

func (d *driver) tracingReport(repeats, objects, workers int, binDir string, took time.Duration) string {
	var b strings.Builder
	cfgs := tracingConfigs()
	fmt.Fprintf(&b, "%s\n## Tracing: what OpenTelemetry costs a reconcile\n\n", tracingBegin)
	fmt.Fprintf(&b, "Written by `bench/cmd/driver --scenarios tracing` on %s in %v. rein's marks controller of the\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second))
	fmt.Fprintf(&b, "side-by-side section (one replica marks %d ConfigMaps by JSON merge patch, %d workers), with tracing\n", objects, workers)
	b.WriteString("off, on with every trace sampled (`OTEL_TRACES_SAMPLER=always_on`), and on with one root in a hundred\n")
	b.WriteString("(`parentbased_traceidratio`, `0.01`): OTLP over gRPC to a receiver in the driver, which counts the spans\n")
	b.WriteString("and drops them (its CPU is not the controller's). A reconcile makes three spans (the run, its handler, the\n")
	b.WriteString("PATCH); the apiserver traces nothing here. CPU is the process's, from its start and, apart, after its\n")
	b.WriteString("\"leading\" line: the reconciles alone, without the cache's initial list and the exporter's set-up, paid once. ")
	fmt.Fprintf(&b, "%d rounds, the settings interleaved in each, each round starting with the next one. Cells: median (min–max, n);\n", repeats)
	b.WriteString("\"/ off\" is the ratio of the medians and, in brackets, the median of the ratios within a round.\n")
	fmt.Fprintf(&b, "Load average (1 min) when the scenario began: %s; when it ended: %s.\n\n", d.tracing.loadBefore, d.tracing.loadAfter)

	res := d.tracing.res
	var names []string
	for _, c := range cfgs {
		names = append(names, c.name)
	}
	b.WriteString("| figure | " + strings.Join(names, " | ") + " |")
	for _, n := range names[1:] {
		fmt.Fprintf(&b, " %s / off |", n)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", 2*len(names)-1) + "\n")
	for _, fig := range res.figures {
		fmt.Fprintf(&b, "| %s |", fig)
		for _, n := range names {
			fmt.Fprintf(&b, " %s |", cell(res.values[fig][n]))
		}
		off := res.values[fig]["off"]
		for _, n := range names[1:] {
			v := res.values[fig][n]
			if len(off) == 0 || len(v) == 0 || median(off) == 0 {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %s× (%s×) |", num(median(v)/median(off)), pairedRatio(res, fig, n, "off"))
		}
		b.WriteString("\n")
	}
	if f := res.failed(); f != "" {
		b.WriteString("\n" + f)
	}
	b.WriteString("\nVersions: " + versions(binDir) + "\n\n")
	b.WriteString("Machine: " + machine() + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench-tracing`, that is `cd bench && go run ./cmd/driver --scenarios tracing --repeats %d --objects %d --out ../docs/benchmarks.md`.\n", repeats, objects)
	b.WriteString(tracingEnd + "\n")
	return b.String()
}

// pairedRatio is the median, over the rounds both ran in, of fw's value of
// fig divided by base's of the same round: on a noisy machine, a round's
// two runs share its noise.
func pairedRatio(res *results, fig, fw, base string) string {
	a, b := res.byRound(fig, fw), res.byRound(fig, base)
	var ratios []float64
	for round, v := range a {
		if w, ok := b[round]; ok && w != 0 {
			ratios = append(ratios, v/w)
		}
	}
	if len(ratios) == 0 {
		return "—"
	}
	slices.Sort(ratios)
	return num(median(ratios))
}
