package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/internal/partition"
	"github.com/rein-k8s/rein/pkg/shard"
)

const partitionBegin, partitionEnd = "<!-- bench-partition:begin -->", "<!-- bench-partition:end -->"

// partitionVariant is one setting of the partition scenario: the program
// its processes run and the flags each gets (rein's besides --shards).
type partitionVariant struct {
	name, program string
	args          []string
}

// partitionVariants are the settings --partition-variants selects from:
// full caches, partitioned caches, partitioned caches that also keep warm
// the shards a replica is next in line for, and the floor: bare client-go
// writers (bench/cmd/clientgo), each listing and watching a fixed range
// of the UID hash with no lease, no protocol and no takeover, which is
// what any partitioned replica spends at the least.
var partitionVariants = []partitionVariant{
	{"full", "rein", nil},
	{"partitioned", "rein", []string{"--partition-caches"}},
	{"warm-next", "rein", []string{"--partition-caches=warm-next"}},
	{"floor", "clientgo", nil},
}

// partitioned tells a variant whose replicas partition their caches
// (rein's, by --partition-caches).
func (v partitionVariant) partitioned() bool {
	return slices.ContainsFunc(v.args, func(a string) bool { return strings.HasPrefix(a, "--partition-caches") })
}

// fixed tells the floor: processes with a fixed range each (--uid-range),
// no shard group and so no takeover.
func (v partitionVariant) fixed() bool { return v.program == "clientgo" }

// procArgs are the flags of the variant's process i of replicas.
func (v partitionVariant) procArgs(i, replicas, shards int) []string {
	if v.fixed() {
		return []string{"--uid-range", fmt.Sprintf("%d/%d", i, replicas)}
	}
	return append([]string{"--shards", strconv.Itoa(shards)}, v.args...)
}

// selectPartitionVariants returns the variants named in the comma-separated
// list, in its order; the first is the one ratios divide by.
func selectPartitionVariants(list string) ([]partitionVariant, error) {
	var out []partitionVariant
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(partitionVariants, func(v partitionVariant) bool { return v.name == n })
		if i < 0 || slices.ContainsFunc(out, func(v partitionVariant) bool { return v.name == n }) {
			return nil, fmt.Errorf("--partition-variants=%q: want distinct names of full, partitioned, warm-next, floor", list)
		}
		out = append(out, partitionVariants[i])
	}
	return out, nil
}

// The partition figures. Per-replica figures have a value per replica
// and round.
const (
	partWall      = "start → all reconciled (s)"
	partRSS       = "peak RSS per replica, all reconciled (MiB)"
	partCPU       = "CPU seconds per replica, start → all reconciled"
	partControl   = "apiserver + etcd CPU seconds, start → all reconciled"
	partIdleCPU   = "no changes: CPU per replica (% of a core)"
	partSteadyCPU = "steady changes: CPU per replica (% of a core)"
	partSteadyCtl = "steady changes: apiserver + etcd CPU (% of a core)"
	partSteadyLag = "steady changes: window end → every change handled (s)"
	partMoved     = "SIGKILL → last of its shards held by another (s)"
	partKill      = "SIGKILL → last sampled change of its shards handled (s)"
	partRenew     = "its last renew → last sampled change handled (s)"
	partSampled   = "objects changed after the SIGKILL"
	partPatched   = "SIGKILL → all sampled changes accepted (s)"
	partRSSAfter  = "peak RSS per surviving replica after the takeover (MiB)"
)

// checkPartitionFlags exits when a selected variant's program (of
// binaries) lacks one of its flags (a rein older than the flag): the
// variant would fail every run, after the objects were made.
func checkPartitionFlags(binaries map[string]string, variants []partitionVariant) {
	for _, v := range variants {
		out, _ := exec.Command(binaries[v.program], append(v.procArgs(0, 1, 1), "-h")...).CombinedOutput()
		if first, _, _ := strings.Cut(string(out), "\n"); strings.HasPrefix(first, "flag provided but not defined") {
			fmt.Fprintf(os.Stderr, "--partition-variants: %s: bench/cmd/%s says %q (bench/cmd/rein passes on the flags of start.Group.BindFlags)\n", v.name, v.program, first)
			os.Exit(2)
		}
	}
}

// partitionSettings are the partition scenario's flags.
type partitionSettings struct {
	variants []partitionVariant
	replicas int
	shards   int
	rate     float64       // steady changes per second
	window   time.Duration // how long they are made
	idle     time.Duration // the window without changes before them
	sample   int           // changes after the SIGKILL (0: every object of its shards)
}

// partitionScenario is the partition scenario: its namespace, made once,
// its settings and its results.
type partitionScenario struct {
	partitionSettings
	ns         string
	st         *state
	created    time.Duration
	loadBefore string
	res        *results
}

// createPartition makes the partition namespace and its ConfigMaps (the
// scale scenario's: 1 KiB of data each), and checks that the apiserver
// filters by shard selector when a variant partitions: else its replicas
// would cache everything, with a warning, and the run would measure full
// caches under another name.
func (d *driver) createPartition(set partitionSettings, load string) {
	ns, took := d.createPayloadObjects("partition")
	d.part = &partitionScenario{partitionSettings: set, ns: ns, created: took, loadBefore: load, res: newResults()}
	d.part.st = follow(d.cs, ns)
	if slices.ContainsFunc(set.variants, func(v partitionVariant) bool { return v.partitioned() || v.fixed() }) {
		ok, err := partition.Probe(context.Background(), partition.ByUID, func(ctx context.Context, o metav1.ListOptions) (metav1.ListMeta, error) {
			l, err := d.cs.CoreV1().ConfigMaps(ns).List(ctx, o)
			if err != nil {
				return metav1.ListMeta{}, err
			}
			return l.ListMeta, nil
		})
		must(err)
		if !ok {
			panic("partition: the apiserver ignores shard selectors (feature gate ShardedListAndWatch off)")
		}
	}
}

// partitionRun is one variant's run in a round on the partition namespace,
// with a mark and a shard group of its own. Its replicas start at once and
// mark every ConfigMap (start → all reconciled: CPU, peak RSS); then the
// steady changes: rate a second for window, each removing the mark from an
// object picked at random, which its holder writes back (CPU over the
// window and until every change is handled); then the replica holding the
// most shards is killed (SIGKILL) and the driver removes the mark from
// sample objects of its shards at once: the time from the kill until the
// survivors have written the last of them back. The floor's processes
// hold fixed ranges: nothing takes over, and its run ends after the
// steady changes.
func (d *driver) partitionRun(v partitionVariant, round int) {
	pt, n := d.part, d.objects
	fw := framework{name: v.name, program: v.program}
	d.guard(fw, round, "partition", func(r *run) {
		add := func(figure string, x float64) { pt.res.addRound(v.name, figure, round, x) }
		r.ns = pt.ns
		controlBefore := cpuOf(d.control...)
		var procs []*proc
		for i := range pt.replicas {
			r.extra = append([]string{"--write", "patch"}, v.procArgs(i, pt.replicas, pt.shards)...)
			procs = append(procs, r.startProc("r"+strconv.Itoa(i), r.tag))
		}
		t0 := procs[0].started
		deadline := time.Now().Add(r.timeout())
		for !pt.st.allMarked(r.tag, n, time.Second) {
			for _, p := range procs {
				if !p.running() {
					panic(fmt.Sprintf("%s exited before all were marked (%v)", p.name, p.state))
				}
			}
			if time.Now().After(deadline) {
				panic("not all marked in time")
			}
		}
		control := cpuOf(d.control...) - controlBefore
		for _, p := range procs {
			cpu, hwm := p.usage()
			add(partCPU, cpu)
			add(partRSS, hwm/(1<<20))
		}
		add(partControl, control)
		all := d.writesByUA(r.offset)
		var last time.Time
		for _, p := range procs {
			if w := all[p.ua]; w != nil && w.last.After(last) {
				last = w.last
			}
		}
		add(partWall, last.Sub(t0).Seconds())
		logf("%s: all %d reconciled %.2fs after the first start; %s", r.tag, n, last.Sub(t0).Seconds(), writeShares(all, procs, t0))
		for _, p := range procs {
			if p.logContains("ignores shard selectors") {
				panic(p.name + " caches in full: the apiserver ignores shard selectors")
			}
		}

		d.partitionSteady(r, procs, add)
		if !v.fixed() { // the floor has no shard group: nothing takes over
			d.partitionTakeover(r, v, procs, add)
		}
	})
}

// flagFloat is x as a flag takes it.
func flagFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// unmark is the merge patch that removes the mark: the object's holder
// writes it back.
var unmark = fmt.Appendf(nil, `{"metadata":{"annotations":{%q:null}}}`, common.Annotation)

// partitionSteady makes rate×window changes, rate a second, to distinct
// objects picked at random, and measures every replica's CPU from the
// first change until every change is handled.
func (d *driver) partitionSteady(r *run, procs []*proc, add func(string, float64)) {
	pt, n := d.part, d.objects
	total := min(int(pt.rate*pt.window.Seconds()), n)
	if total < 1 {
		return
	}
	time.Sleep(2 * time.Second) // past the last writes of the initial pass
	if pt.idle > 0 {
		// What a replica spends with nothing to do (the runtime, lease
		// renewals, the shard protocol): the part of the steady CPU that
		// no cache saves.
		before := make([]float64, len(procs))
		for i, p := range procs {
			before[i], _ = p.usage()
		}
		began := time.Now()
		time.Sleep(pt.idle) // the window measured: nothing to await
		secs := time.Since(began).Seconds()
		for i, p := range procs {
			cpu, _ := p.usage()
			add(partIdleCPU, (cpu-before[i])*100/secs)
		}
	}
	names := make([]string, total)
	for i, k := range rand.Perm(n)[:total] {
		names[i] = payloadObjectName(k)
	}
	before := make([]float64, len(procs))
	for i, p := range procs {
		before[i], _ = p.usage()
	}
	controlBefore := cpuOf(d.control...)
	offset := d.auditSize()
	if d.profDir != "" {
		for _, p := range procs {
			p.signal(syscall.SIGUSR1) // --cpuprofile-on-usr1 (startProc)
		}
	}
	began := time.Now()
	d.paced(pt.ns, names, pt.rate)
	sent := time.Now()
	// Every change is handled by one write of the mark (audit log): the
	// driver's watch may not have seen the last changes yet.
	last, ok := d.awaitWrites(offset, procs, total, r.timeout())
	if !ok {
		panic("steady changes: not all handled in time")
	}
	secs := time.Since(began).Seconds()
	for i, p := range procs {
		cpu, _ := p.usage()
		add(partSteadyCPU, (cpu-before[i])*100/secs)
	}
	if d.profDir != "" {
		for _, p := range procs {
			p.signal(syscall.SIGUSR1) // the profile's end
		}
		for _, p := range procs {
			p.awaitFile(p.profile, 10*time.Second)
		}
	}
	add(partSteadyCtl, (cpuOf(d.control...)-controlBefore)*100/secs)
	add(partSteadyLag, last.Sub(sent).Seconds())
	if !pt.st.allMarked(r.tag, n, time.Minute) {
		panic("steady changes: not every object marked again")
	}
	logf("%s: steady: %d changes in %v (%s/s asked), the last handled %v after the last was accepted", r.tag, total,
		sent.Sub(began).Round(time.Millisecond), flagFloat(pt.rate), last.Sub(sent).Round(time.Millisecond))
}

// paced removes the mark of each object of names in turn, rate a second
// from now (16 requests in flight at most).
func (d *driver) paced(ns string, names []string, rate float64) {
	began := time.Now()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, name := range names {
		time.Sleep(time.Until(began.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := d.cs.CoreV1().ConfigMaps(ns).Patch(context.Background(), name, types.MergePatchType, unmark, metav1.PatchOptions{})
			must(err)
		})
	}
	wg.Wait()
}

// partitionTakeover kills the replica that holds the most shards and,
// at once, removes the mark of sample objects of those shards (in a full
// cache's group a key's shard is its name's, shard.Of; partitioned, its
// UID's, partition.OfValue). The run's figures: from the kill to the
// last of its shards held by another, and to the last sampled object
// marked again (the survivors' writes, audit log); the latter also from
// its last renew.
func (d *driver) partitionTakeover(r *run, v partitionVariant, procs []*proc, add func(string, float64)) {
	pt := d.part
	records := make([]string, pt.shards)
	for s := range records {
		records[s] = shard.RecordName(r.tag, s)
	}
	var victim *proc
	var id string
	var held []string
	for _, p := range procs {
		pid := pt.st.identityOf(records, p.name)
		if h := pt.st.heldBy(records, pid); pid != "" && len(h) >= len(held) {
			victim, id, held = p, pid, h
		}
	}
	if victim == nil {
		panic("no replica holds a shard")
	}
	heldShard := map[int]bool{}
	for s, rec := range records {
		heldShard[s] = slices.Contains(held, rec)
	}
	var names []string
	for name, uid := range pt.st.objects() {
		s := shard.Of(pt.ns, name, pt.shards)
		if v.partitioned() {
			s = partition.OfValue(string(uid), pt.shards)
		}
		if heldShard[s] {
			names = append(names, name)
		}
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	if pt.sample > 0 && len(names) > pt.sample {
		names = names[:pt.sample]
	}
	if len(names) == 0 {
		panic(victim.name + "'s shards hold no object")
	}

	offset := d.auditSize()
	killed := time.Now()
	victim.kill()
	must(createEach(len(names), func(i int) error {
		_, err := d.cs.CoreV1().ConfigMaps(pt.ns).Patch(context.Background(), names[i], types.MergePatchType, unmark, metav1.PatchOptions{})
		return err
	}))
	patched := time.Now()
	moved, ok := pt.st.movedAfter(held, id, killed, 2*time.Minute)
	if !ok {
		panic(fmt.Sprintf("SIGKILL: %d shards of %s not taken over", len(held), id))
	}
	survivors := slices.DeleteFunc(slices.Clone(procs), func(p *proc) bool { return p == victim })
	last, ok := d.awaitWrites(offset, survivors, len(names), r.timeout())
	if !ok || !pt.st.allMarked(r.tag, d.objects, time.Minute) {
		panic("SIGKILL: the changes to the killed replica's objects were not all handled in time")
	}
	renew := pt.st.lastRenew(shard.MemberLeaseName(r.tag, id))
	add(partSampled, float64(len(names)))
	add(partPatched, patched.Sub(killed).Seconds())
	add(partMoved, moved.Sub(killed).Seconds())
	add(partKill, last.Sub(killed).Seconds())
	add(partRenew, last.Sub(renew).Seconds())
	for _, p := range survivors {
		_, hwm := p.usage()
		add(partRSSAfter, hwm/(1<<20))
	}
	logf("%s: SIGKILL of %s (%d of %d shards): %d objects changed in %v; its shards held by others %v after the kill, the last change handled %v after it (%v after its last renew)",
		r.tag, victim.name, len(held), pt.shards, len(names), patched.Sub(killed).Round(time.Millisecond),
		moved.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond), last.Sub(renew).Round(time.Millisecond))
}
