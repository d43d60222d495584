// Command driver runs the side-by-side benchmarks of rein, wrangler and
// controller-runtime on one local control plane (pkg/testenv, audit log on)
// and writes a markdown report.
//
//	cd bench && go run ./cmd/driver --repeats 5 --objects 5000 --out ../docs/benchmarks.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/internal/testbin"
	"github.com/rein-k8s/rein/internal/testkit/otlptest"
	"github.com/rein-k8s/rein/pkg/testenv"
)

type framework struct {
	name, program string
	args          []string
}

var frameworks = []framework{
	{"rein", "rein", nil},
	{"wrangler", "wrangler", nil},
	{"controller-runtime", "controllerruntime", nil},
	{"controller-runtime+warmup", "controllerruntime", []string{"--warmup"}},
}

type driver struct {
	env      *testenv.Env
	cs       kubernetes.Interface
	ns       string // the namespace every run works in
	st       *state // marks and Lease holders of ns
	binaries map[string]string
	logDir   string
	workers  int
	objects  int
	write    string
	idle     time.Duration
	results  *results           // throughput and election
	children *results           // the children scenario
	sharded  *results           // the sharded scenario
	scale    *scale             // the scale scenario's namespace and results
	fresh    *fresh             // the fresh scenario's namespace and results
	tracing  *tracing           // the tracing scenario's receiver and results
	part     *partitionScenario // the partition scenario's namespace, settings and results
	profDir  string
	reinLog  string // --rein-log-level
	control  []int  // pids of the apiserver and etcd
	auditEnd int64  // the end of the audit log's last complete line, as last read
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	repeats := flag.Int("repeats", 5, "rounds; every round runs every scenario for every framework, interleaved")
	objects := flag.Int("objects", 5000, "ConfigMaps every controller marks (children: Deployments, 3 children each)")
	workers := flag.Int("workers", 5, "workers of every controller")
	out := flag.String("out", "", "markdown file to write the report into (the sections of the scenarios run are replaced, or appended; empty: stdout)")
	scen := flag.String("scenarios", "throughput,election", "comma-separated: throughput (one replica), election (three replicas: idle load, SIGTERM handoff, then SIGKILL takeover, each with winning → first reconcile), children (rein and wrangler only: a generating handler keeps 3 children per Deployment, --objects Deployments; converge, then a restarted process's resync), sharded (rein sharded over 1, 3 and 5 replicas against one leader and the peers, with a handler that waits --delay and without), scale (--objects ConfigMaps of 1 KiB: sync, memory, marking all against a bare client-go writer, SIGKILL takeover with a full cache; rein also with a drop-data transform and metadata-only), partition (rein only: --objects ConfigMaps of 1 KiB, --partition-replicas sharded replicas with full caches against partitioned caches (--partition-caches, the apiserver's ShardedListAndWatch on): start → all reconciled with each replica's CPU and peak RSS, CPU under --partition-rate changes/s, and the takeover of a SIGKILLed replica's shards, cold), fresh (--objects ConfigMaps of 1 KiB, a new leader's first pass after a SIGKILL and --fresh-changes changes made during it: each change's wait for its handler call; rein before the priority queue (--fifo-ref) and now, controller-runtime with its priority queue on and off), tracing (rein's throughput run with OpenTelemetry tracing off, sampling every trace, and parent-based 0.01, exporting to a receiver in the driver)")
	fws := flag.String("frameworks", "", "comma-separated subset of rein,wrangler,controller-runtime,controller-runtime+warmup (default all)")
	idle := flag.Duration("idle", 10*time.Second, "idle window for the election-load figure")
	binDir := flag.String("bindir", "", "kube-apiserver and etcd (default $REIN_TESTBIN or ../bin)")
	write := flag.String("write", "patch", "how every controller writes its mark: patch (JSON merge patch) or update (PUT of the cached object)")
	delay := flag.Duration("delay", 20*time.Millisecond, "sharded scenario: how long the handler waits before it writes (a simulated external call); each round also runs without it")
	replicaCounts := flag.String("sharded-replicas", "", "sharded scenario: only the configurations with these comma-separated replica counts (default all)")
	scaleStatePath := flag.String("scale-state", "", "scale scenario: keep its complete rounds in this JSON file, and go on from them: a driver started again runs only the rounds still missing of --repeats, and reports all of them (for runs longer than one sitting)")
	freshWork := flag.Duration("fresh-work", 2*time.Millisecond, "fresh scenario: how long every handler call waits (a simulated check of an external system; the pass over --objects keys takes about --objects × this ÷ --workers)")
	freshChanges := flag.Int("fresh-changes", 100, "fresh scenario: changes made during each successor's first pass")
	fifoRef := flag.String("fifo-ref", "850532c", "fresh scenario: the rein commit built as \"rein FIFO\" (the last one before the priority queue)")
	partVariants := flag.String("partition-variants", "full,partitioned", "partition scenario: comma-separated variants of full (every replica caches every object), partitioned (--partition-caches), warm-next (--partition-caches=warm-next: also the shards a replica is next in line for) and floor (bare client-go writers, each listing and watching a fixed range of the UID hash: no lease, no protocol, no takeover); ratios divide by the first")
	partReplicas := flag.Int("partition-replicas", 5, "partition scenario: replicas of the sharded group")
	partShards := flag.Int("partition-shards", 20, "partition scenario: shards of the group (20: 4 per replica of 5, and 5 per replica of the 4 left after the SIGKILL)")
	partRate := flag.Float64("partition-rate", 100, "partition scenario: steady changes per second, each to an object picked at random (0: no steady phase)")
	partWindow := flag.Duration("partition-window", 30*time.Second, "partition scenario: how long the steady changes are made")
	partIdle := flag.Duration("partition-idle", 15*time.Second, "partition scenario: a window without changes before the steady ones (with --partition-rate > 0), over which each replica's CPU is measured (0: none)")
	partSample := flag.Int("partition-sample", 1000, "partition scenario: objects of the killed replica's shards changed at once after the SIGKILL (0: all of them; they should be made well within the lease)")
	reinLogLevel := flag.String("rein-log-level", "warning", "the log level of every bench/cmd/rein process (logrus: error, warning, info, debug); info logs a sharded replica's takeovers step by step (shard taken, caches current, keys queued)")
	profileDir := flag.String("profile-dir", "", "write CPU profiles of the apiserver (4 s) and of the controller (6 s from start), taken during each throughput run, and of the controller (12 s from start) during each tracing run, and of each partition scenario process over its steady changes, into this folder")
	flag.Parse()
	// Setup failures (no binaries, an apiserver that does not start) end
	// the driver with their error, after the deferred clean-ups ran.
	defer func() {
		if e := recover(); e != nil {
			fmt.Fprintln(os.Stderr, "driver:", e)
			os.Exit(1)
		}
	}()

	want := map[string]bool{}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s != "throughput" && s != "election" && s != "children" && s != "sharded" && s != "scale" && s != "fresh" && s != "tracing" && s != "partition" {
			fmt.Fprintf(os.Stderr, "--scenarios: unknown scenario %q (want throughput, election, children, sharded, scale, fresh, tracing, partition)\n", s)
			os.Exit(2)
		}
		want[s] = true
	}
	if *fws != "" {
		keep := map[string]bool{}
		for _, s := range strings.Split(*fws, ",") {
			keep[strings.TrimSpace(s)] = true
		}
		var sel []framework
		for _, f := range frameworks {
			if keep[f.name] {
				sel = append(sel, f)
				delete(keep, f.name)
			}
		}
		if len(keep) > 0 || len(sel) == 0 {
			fmt.Fprintf(os.Stderr, "--frameworks=%q: want a comma-separated subset of rein,wrangler,controller-runtime,controller-runtime+warmup\n", *fws)
			os.Exit(2)
		}
		frameworks = sel
	}
	for _, c := range strings.Split(*replicaCounts, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "--sharded-replicas=%q: want comma-separated replica counts, e.g. 1,3,5\n", *replicaCounts)
			os.Exit(2)
		}
		shardedReplicas = append(shardedReplicas, n)
	}
	var scaleSt *scaleState
	if *scaleStatePath != "" {
		if len(want) != 1 || !want["scale"] {
			fmt.Fprintln(os.Stderr, "--scale-state: only with --scenarios scale alone")
			os.Exit(2)
		}
		var err error
		if scaleSt, err = loadScaleState(*scaleStatePath, *objects, *workers, treeVersion()); err != nil {
			fmt.Fprintln(os.Stderr, "--scale-state:", err)
			os.Exit(2)
		}
		logf("scale: %s holds %d of %d rounds", *scaleStatePath, scaleSt.Rounds, *repeats)
	}
	if want["fresh"] && (*freshWork <= 0 || *freshChanges < 1) {
		fmt.Fprintf(os.Stderr, "--fresh-work=%v --fresh-changes=%d: want a positive wait (a pass of waits that takes a while) and at least one change\n", *freshWork, *freshChanges)
		os.Exit(2)
	}
	partSet := partitionSettings{replicas: *partReplicas, shards: *partShards, rate: *partRate, window: *partWindow, idle: *partIdle, sample: *partSample}
	if want["partition"] {
		var err error
		if partSet.variants, err = selectPartitionVariants(*partVariants); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if partSet.replicas < 2 || partSet.shards < partSet.replicas || partSet.rate < 0 || partSet.sample < 0 || partSet.idle < 0 || (partSet.rate > 0 && partSet.window <= 0) {
			fmt.Fprintf(os.Stderr, "--partition-replicas=%d --partition-shards=%d --partition-rate=%v --partition-window=%v --partition-idle=%v --partition-sample=%d: want at least 2 replicas (one is killed), a shard per replica at least, a rate ≥ 0 with a positive window, an idle window ≥ 0, a sample ≥ 0\n",
				partSet.replicas, partSet.shards, partSet.rate, partSet.window, partSet.idle, partSet.sample)
			os.Exit(2)
		}
	}
	if *write != "patch" && *write != "update" {
		fmt.Fprintf(os.Stderr, "--write=%q: want patch or update\n", *write)
		os.Exit(2)
	}
	if *binDir == "" && os.Getenv(testbin.DirEnv) == "" {
		if abs, err := filepath.Abs("../bin"); err == nil {
			*binDir = abs
		}
	}
	if _, err := logrus.ParseLevel(*reinLogLevel); err != nil {
		fmt.Fprintf(os.Stderr, "--rein-log-level=%q: want error, warning, info or debug\n", *reinLogLevel)
		os.Exit(2)
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "--profile-dir=%q: %v\n", *profileDir, err)
			os.Exit(2)
		}
	}
	began := time.Now()
	load := loadAverage()

	tmp, err := os.MkdirTemp("", "rein-bench-")
	must(err)
	d := &driver{binaries: map[string]string{}, logDir: tmp, workers: *workers, objects: *objects, write: *write,
		idle: *idle, results: newResults(), children: newResults(), sharded: newResults(), profDir: *profileDir, reinLog: *reinLogLevel}
	logf("building controllers into %s", tmp)
	for _, prog := range []string{"rein", "wrangler", "controllerruntime", "clientgo"} {
		o := filepath.Join(tmp, prog)
		b := exec.Command("go", "build", "-o", o, "./cmd/"+prog)
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		must(b.Run())
		d.binaries[prog] = o
	}
	if want["partition"] {
		checkPartitionFlags(d.binaries, partSet.variants)
	}
	var baseline string
	if want["fresh"] {
		logf("building bench/cmd/rein against rein at %s", *fifoRef)
		d.binaries[reinFIFOProgram], baseline = buildBaseline(tmp, *fifoRef)
	}
	envOpts := testenv.Options{BinDir: *binDir, Audit: true}
	if want["scale"] || want["partition"] {
		// Every scale run writes every object: compact etcd's history
		// every minute rather than every 5, so that 100k objects of 1 KiB
		// rewritten run after run stay far from etcd's 2 GiB quota.
		envOpts.APIServerFlags = map[string][]string{"etcd-compaction-interval": {"1m"}}
	}
	if want["partition"] {
		// The partitioned caches' sharded list and watch (alpha).
		envOpts.APIServerFlags["feature-gates"] = []string{"ShardedListAndWatch=true"}
	}
	d.env, err = testenv.Start(envOpts)
	must(err)
	defer func() { _ = d.env.Stop() }()
	d.control = childPIDs("kube-apiserver", "etcd")
	cfg := d.env.Config()
	cfg.QPS, cfg.Burst = -1, 0
	cfg.ContentType = "application/vnd.kubernetes.protobuf" // the driver's own watch stays light
	cs, err := kubernetes.NewForConfig(cfg)
	must(err)
	d.cs = cs
	marks := want["throughput"] || want["election"]
	if marks || want["sharded"] || want["tracing"] {
		d.createObjects()
		defer d.st.cancel() // before the control plane stops
	}
	if want["fresh"] {
		d.createFresh(*freshWork, *freshChanges, baseline, load)
	}
	if want["partition"] {
		d.createPartition(partSet, load)
		defer d.part.st.cancel()
	}
	if want["tracing"] {
		recv, err := otlptest.Start(false)
		must(err)
		defer recv.Stop()
		d.tracing = &tracing{recv: recv, res: newResults(), loadBefore: loadAverage()}
	}
	first := 1
	if want["scale"] {
		if scaleSt != nil && scaleSt.Rounds >= *repeats {
			d.scale = &scale{res: newResults(), warm: map[string][]bool{}}
		} else {
			d.createScale()
			defer d.scale.st.cancel()
		}
		if scaleSt != nil {
			scaleSt.restore(d.scale)
			d.scale.state = scaleSt
			first = scaleSt.Rounds + 1
			if first <= *repeats {
				scaleSt.Invocations = append(scaleSt.Invocations, scaleInvocation{Date: began.UTC().Format("2006-01-02"), Created: d.scale.created.Seconds()})
			}
		}
	}

	for round := first; round <= *repeats; round++ {
		if want["throughput"] {
			for _, f := range frameworks {
				d.guard(f, round, "throughput", d.throughput)
			}
		}
		if want["election"] {
			for _, f := range frameworks {
				d.guard(f, round, "election", d.election)
			}
		}
		if want["sharded"] {
			delays := []time.Duration{*delay, 0}
			if *delay == 0 {
				delays = delays[1:] // the same run twice would find its own marks and Lease
			}
			for _, delay := range delays {
				for _, c := range shardedConfigs() {
					d.shardedRun(c, delay, round)
				}
			}
		}
		if want["children"] {
			for _, f := range frameworks {
				if f.name == "rein" || f.name == "wrangler" {
					d.guard(f, round, "children", d.childrenRun)
				}
			}
		}
		if want["scale"] {
			for _, f := range scaleFrameworks() {
				d.guard(f, round, "scale", d.scaleRun)
			}
			if scaleSt != nil {
				must(scaleSt.save(*scaleStatePath, d.scale, round, began))
				logf("scale: round %d of %d saved in %s", round, *repeats, *scaleStatePath)
			}
		}
		if want["fresh"] {
			for _, f := range freshFrameworks() {
				d.guard(f, round, "fresh", d.freshRun)
			}
		}
		if want["partition"] {
			// Each round starts with the next variant, as tracing's.
			vs := d.part.variants
			for i := range vs {
				d.partitionRun(vs[(i+round-1)%len(vs)], round)
			}
		}
		if want["tracing"] {
			// Each round starts with the next setting, so that none is
			// always first (or last) after the previous round's runs.
			cfgs := tracingConfigs()
			for i := range cfgs {
				c := cfgs[(i+round-1)%len(cfgs)]
				d.guard(framework{name: c.name, program: "rein"}, round, "tracing", d.tracingRun(c))
			}
		}
	}
	took := time.Since(began)
	var sections [][3]string // section, begin marker, end marker
	if marks {
		sections = append(sections, [3]string{d.report(*repeats, *objects, *workers, *binDir, took), beginMark, endMark})
	}
	if want["sharded"] {
		sections = append(sections, [3]string{d.shardedReport(*repeats, *objects, *workers, *delay, *binDir, took), shardedBegin, shardedEnd})
	}
	if want["children"] {
		sections = append(sections, [3]string{d.childrenReport(*repeats, *objects, *workers, *binDir, took), childrenBegin, childrenEnd})
	}
	if want["scale"] {
		sections = append(sections, [3]string{d.scaleReport(*repeats, *objects, *workers, *binDir, took), scaleBegin, scaleEnd})
	}
	if want["fresh"] {
		sections = append(sections, [3]string{d.freshReport(*repeats, *objects, *workers, *binDir, took), freshBegin, freshEnd})
	}
	if want["partition"] {
		sections = append(sections, [3]string{d.partitionReport(*repeats, *objects, *workers, *binDir, took), partitionBegin, partitionEnd})
	}
	if want["tracing"] {
		d.tracing.loadAfter = loadAverage()
		sections = append(sections, [3]string{d.tracingReport(*repeats, *objects, *workers, *binDir, took), tracingBegin, tracingEnd})
	}
	if *out == "" {
		for _, s := range sections {
			fmt.Print(s[0])
		}
		return
	}
	for _, s := range sections {
		must(common.WriteSection(*out, s[0], s[1], s[2]))
	}
	logf("wrote %s in %v; logs in %s", *out, time.Since(began).Round(time.Second), tmp)
}

// createObjects creates the namespace and its ConfigMaps once: every run
// marks them with a mark of its own, so every run finds all of them
// unmarked.
func (d *driver) createObjects() {
	ctx := context.Background()
	ns, err := d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}, metav1.CreateOptions{})
	must(err)
	d.ns = ns.Name
	must(createEach(d.objects, func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i)}, Data: map[string]string{"v": "1"}}
		_, err := d.cs.CoreV1().ConfigMaps(d.ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}))
	d.st = follow(d.cs, d.ns)
	logf("created %d ConfigMaps in %s", d.objects, d.ns)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// run is one scenario run of one framework, on a Lease of its own.
type run struct {
	d      *driver
	fw     framework
	tag    string // also the Lease's name and the prefix of the marks
	round  int    // the round it is part of, from 1
	offset int64  // audit log size when the run began
	procs  []*proc
	// ns, lease and extra, when set, replace the driver's namespace and
	// the run's Lease name, and add arguments, for the next startProc;
	// env adds variables to its environment.
	ns, lease string
	extra     []string
	env       []string
}

// tagSafe is name as part of a run's tag, which names its Lease: lower
// case letters, digits, dots and dashes.
func tagSafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
}

func (d *driver) guard(f framework, round int, scenario string, fn func(*run)) {
	r := &run{d: d, fw: f, round: round, tag: fmt.Sprintf("%s-%s-%d", scenario, tagSafe(f.name), round)}
	defer func() {
		for _, p := range r.procs {
			p.kill()
		}
		if e := recover(); e != nil {
			logf("%s: FAILED: %v", r.tag, e)
			for _, p := range r.procs {
				logf("--- %s log tail:\n%s", p.name, p.tail())
			}
			res := d.results
			switch scenario {
			case "children":
				res = d.children
			case "sharded":
				res = d.sharded
			case "scale":
				res = d.scale.res
			case "fresh":
				res = d.fresh.res
			case "tracing":
				res = d.tracing.res
			case "partition":
				res = d.part.res
			}
			res.fail(f.name, r.tag)
			d.saveAudit(r)
		}
	}()
	logf("%s: start", r.tag)
	r.offset = d.auditSize()
	fn(r)
}

func (r *run) timeout() time.Duration {
	return 2*time.Minute + time.Duration(r.d.objects)*20*time.Millisecond
}

// throughput: one replica, every object unmarked for its mark.
func (d *driver) throughput(r *run) {
	controlBefore := cpuOf(d.control...)
	p := r.startProc("r0", r.tag)
	if d.profDir != "" {
		go d.profileAPIServer(filepath.Join(d.profDir, r.tag+".pprof"), 2*time.Second, 4)
	}
	m := d.awaitMarked(r, p, d.st, d.objects, controlBefore)
	if d.profDir != "" {
		// the controller writes its profile 6 s after its start
		time.Sleep(time.Until(p.started.Add(7 * time.Second)))
	}
	res := d.results
	res.add(r.fw.name, "throughput: process start → all written (s)", m.fromStart.Seconds())
	res.add(r.fw.name, "throughput: leading → all written (s)", m.fromLeading.Seconds())
	res.add(r.fw.name, "throughput: objects/s after leading", m.perSecond)
	res.add(r.fw.name, "throughput: controller CPU seconds", m.cpu)
	res.add(r.fw.name, "throughput: apiserver + etcd CPU seconds", m.control)
	res.add(r.fw.name, "throughput: API requests", float64(m.requests))
	res.add(r.fw.name, "throughput: peak RSS (MiB)", m.hwm/(1<<20))
}

// marked is what one replica's run that marks every object measured.
type marked struct {
	fromStart, fromLeading time.Duration // to its last write
	perSecond              float64       // objects/s from its "leading" line
	cpu, hwm               float64       // its CPU seconds and peak RSS (bytes) once all are marked
	control                float64       // apiserver + etcd CPU seconds from controlBefore
	requests               int
}

// awaitMarked waits until st shows n objects with p's mark, and measures
// p's run: times of writes from the audit log, CPU and peak RSS from
// /proc. controlBefore is the control plane's CPU seconds at p's start.
func (d *driver) awaitMarked(r *run, p *proc, st *state, n int, controlBefore float64) marked {
	if !st.allMarked(p.mark, n, r.timeout()) {
		panic("not all marked in time")
	}
	var m marked
	m.control = cpuOf(d.control...) - controlBefore
	m.cpu, m.hwm = p.usage()
	last := d.lastWrite(r.offset, p.ua)
	lead, ok := p.logTime("leading")
	if !ok {
		panic("no leading line")
	}
	m.fromStart, m.fromLeading = last.Sub(p.started), last.Sub(lead)
	m.perSecond = float64(n) / m.fromLeading.Seconds()
	m.requests = uaCount(d.requests(r.offset, p.started, time.Now()), p.ua)
	logf("%s: %s: %.2fs from start, %.2fs from leading, cpu %.2fs (apiserver+etcd %.2fs), %d requests, rss %.0f MiB",
		r.tag, p.name, m.fromStart.Seconds(), m.fromLeading.Seconds(), m.cpu, m.control, m.requests, m.hwm/(1<<20))
	return m
}

// election: three replicas, each with its own mark so that every new
// leader has work on every object. Once the first leader has marked
// everything: the idle window, then SIGTERM to the leader (graceful
// handoff); once the successor has marked everything, SIGKILL to it (crash
// takeover).
func (d *driver) election(r *run) {
	for i := range 3 {
		r.startProc("r"+strconv.Itoa(i), r.tag+"-r"+strconv.Itoa(i))
	}
	leader := r.awaitLeading(time.Minute)
	if !d.st.allMarked(leader.mark, d.objects, r.timeout()) {
		panic("first leader did not mark all in time")
	}
	d.idleLoad(r, leader)

	successor := d.takeover(r, leader, syscall.SIGTERM, "graceful handoff (SIGTERM)", "after handoff")
	// A graceful exit ends the old leader.
	select {
	case <-leader.exited:
	case <-time.After(30 * time.Second):
		logf("%s: old leader still running 30s after SIGTERM", r.tag)
	}
	if !d.st.allMarked(successor.mark, d.objects, r.timeout()) {
		panic("successor did not mark all in time")
	}
	d.takeover(r, successor, syscall.SIGKILL, "crash takeover (SIGKILL)", "after crash")
}

// idleLoad counts every replica's requests in the idle window.
func (d *driver) idleLoad(r *run, leader *proc) {
	// Past the leader's last write and the standbys' start-up.
	time.Sleep(2 * time.Second)
	from := time.Now()
	time.Sleep(d.idle)
	to := time.Now()
	time.Sleep(time.Second) // requests received before `to` are in the audit log
	counts := d.requests(r.offset, from, to)
	secs := to.Sub(from).Seconds()
	for _, p := range r.procs {
		if p == leader {
			d.results.add(r.fw.name, "idle: leader requests/s", float64(uaCount(counts, p.ua))/secs)
		} else {
			d.results.add(r.fw.name, "idle: standby requests/s (each)", float64(uaCount(counts, p.ua))/secs)
		}
	}
}

// takeover stops leader with sig and measures how its successor takes over.
func (d *driver) takeover(r *run, leader *proc, sig syscall.Signal, what, when string) *proc {
	oldHolder := d.st.holder(r.tag)
	t0 := time.Now()
	must(leader.cmd.Process.Signal(sig))
	_, leaseAt, ok := d.st.holderAfter(r.tag, t0, oldHolder, 2*time.Minute)
	if !ok {
		panic("no new lease holder after " + what)
	}
	succ := r.awaitLeading(time.Minute, leader)
	first, ok := d.firstWrite(r.offset, succ.ua, time.Minute)
	if !ok {
		panic("successor wrote nothing after " + what)
	}
	res := d.results
	res.add(r.fw.name, what+": → successor holds the lease (s)", leaseAt.Sub(t0).Seconds())
	res.add(r.fw.name, what+": → successor's first write (s)", first.Sub(t0).Seconds())
	lead, _ := succ.logTime("leading")
	if fr, ok := succ.logTime("first-reconcile"); ok {
		res.add(r.fw.name, fmt.Sprintf("winning → first reconcile %s, %d cached objects (ms)", when, d.objects), fr.Sub(lead).Seconds()*1000)
	}
	logf("%s: %s: lease %v, first write %v", r.tag, what, leaseAt.Sub(t0), first.Sub(t0))
	return succ
}

// awaitLeading waits for a running replica, other than the ones in not,
// that logged "leading".
func (r *run) awaitLeading(timeout time.Duration, not ...*proc) *proc {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, p := range r.procs {
			if slices.Contains(not, p) || !p.running() {
				continue
			}
			if _, ok := p.logTime("leading"); ok {
				return p
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	panic("no replica leads")
}

// profileAPIServer fetches a CPU profile of the apiserver, seconds long
// from after, into path.
func (d *driver) profileAPIServer(path string, after time.Duration, seconds int) {
	time.Sleep(after) // past process start and the initial list
	data, err := d.cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(seconds)).DoRaw(context.Background())
	if err != nil {
		logf("profile: %v", err)
		return
	}
	_ = os.WriteFile(path, data, 0o644)
}

// createEach calls create for 0..n-1 from 16 goroutines and returns the
// first error (the others stop taking work then).
func createEach(n int, create func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && firstErr.Load() == nil; i = int(next.Add(1)) - 1 {
				if err := create(i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return *e
	}
	return nil
}
