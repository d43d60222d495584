package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const scaleBegin, scaleEnd = "<!-- bench-scale:begin -->", "<!-- bench-scale:end -->"

// scaleDataBytes is the size of each scale ConfigMap's data.
const scaleDataBytes = 1024

// standbySettle is how long a standby that caches nothing before it leads
// (wrangler, controller-runtime without warmup) gets to start and
// campaign before the leader is killed.
const standbySettle = 3 * time.Second

// scale is the scale scenario's namespace, made once, and its results.
type scale struct {
	ns      string
	st      *state        // its ConfigMaps' marks and its Leases' holders
	created time.Duration // creating its ConfigMaps
	res     *results
	// warm records, per framework, whether each run's standby had
	// logged "synced" when the leader was killed.
	warm map[string][]bool
	// state, with --scale-state, holds the rounds of earlier invocations.
	state *scaleState
}

// clientGo is the bare client-go writer (cmd/clientgo) every objects/s
// figure is held against.
var clientGo = framework{"client-go", "clientgo", nil}

// scaleFrameworks are the scale scenario's runs in a round, in order: the
// bare client-go writer first, so that rein's share of its objects/s is
// taken minutes apart at most (a shared machine's load drifts); rein in
// its three cache settings; the selected peers in their default setting
// (and controller-runtime metadata-only too, its OnlyMetadata being one
// option away).
func scaleFrameworks() []framework {
	out := []framework{clientGo}
	for _, f := range frameworks {
		switch f.name {
		case "rein":
			out = append(out, f,
				framework{"rein+drop-data", "rein", []string{"--cache", "drop-data"}},
				framework{"rein+metadata", "rein", []string{"--cache", "metadata"}})
		case "controller-runtime":
			out = append(out, f, framework{"controller-runtime+metadata", "controllerruntime", []string{"--cache", "metadata"}})
		default:
			out = append(out, f)
		}
	}
	return out
}

// coldStandby names the frameworks whose standby starts no cache before it
// leads: the driver does not wait for their standby's "synced" line.
var coldStandby = map[string]bool{"wrangler": true, "controller-runtime": true, "controller-runtime+metadata": true}

// scalePeer tells the peers the targets compare rein with: the other
// frameworks in their default setting (not the client-go writer, not a
// metadata-only variant).
func scalePeer(name string) bool {
	return !strings.HasPrefix(name, "rein") && name != clientGo.name && !strings.HasSuffix(name, "+metadata")
}

// createScale makes the scale namespace and its ConfigMaps, each with
// scaleDataBytes of data, and times it.
func (d *driver) createScale() {
	ns, took := d.createPayloadObjects("scale")
	d.scale = &scale{ns: ns, created: took, res: newResults(), warm: map[string][]bool{}}
	d.scale.st = follow(d.cs, ns)
}

// createPayloadObjects makes a namespace bench-<scenario>-… and --objects
// ConfigMaps in it, cm-000000 on, each with scaleDataBytes of data, from
// 16 goroutines, and returns the namespace and how long creating took.
func (d *driver) createPayloadObjects(scenario string) (string, time.Duration) {
	ctx := context.Background()
	ns, err := d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-" + scenario + "-"}}, metav1.CreateOptions{})
	must(err)
	began := time.Now()
	must(createEach(d.objects, func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: payloadObjectName(i)}, Data: map[string]string{"payload": scalePayload(i)}}
		_, err := d.cs.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}))
	took := time.Since(began)
	logf("%s: created %d ConfigMaps of %d B in %s in %v (%.0f/s)", scenario, d.objects, scaleDataBytes, ns.Name,
		took.Round(time.Millisecond), float64(d.objects)/took.Seconds())
	return ns.Name, took
}

// payloadObjectName is the name of createPayloadObjects' ConfigMap number i.
func payloadObjectName(i int) string { return fmt.Sprintf("cm-%06d", i) }

// scalePayload is scaleDataBytes of hex digits, different for every object.
func scalePayload(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return strings.Repeat(hex.EncodeToString(sum[:]), scaleDataBytes/(2*len(sum)))
}

// scaleRun: one framework on the scale namespace. A first replica syncs
// its caches (start → "synced", CPU and peak RSS then) and marks every
// ConfigMap (objects/s, CPU, peak RSS). Then a standby with the same mark
// joins and the first is killed (SIGKILL): the successor's winning → first
// reconcile, and its pass over every key, which finds each one marked
// already (a handler call, no write). The client-go writer has no
// election: it runs the first part only.
func (d *driver) scaleRun(r *run) {
	sc, fw, n := d.scale, r.fw.name, d.objects
	add := func(figure string, v float64) { sc.res.addRound(fw, figure, r.round, v) }
	r.ns = sc.ns
	// Always a patch: an update would write away what drop-data and
	// metadata-only leave out of the cache.
	r.extra = []string{"--write", "patch"}

	controlBefore := cpuOf(d.control...)
	p0 := r.startProc("r0", r.tag)
	synced, ok := p0.awaitLog("synced", r.timeout())
	if !ok {
		panic("no synced line")
	}
	// Read within the log poll's 20 ms of the line: the marking that
	// starts after it adds no more than that.
	cpu, hwm := p0.usage()
	add("sync: process start → caches synced (s)", synced.Sub(p0.started).Seconds())
	add("sync: controller CPU seconds to sync", cpu)
	add("sync: peak RSS when synced (MiB)", hwm/(1<<20))

	m := d.awaitMarked(r, p0, sc.st, n, controlBefore)
	add("peak RSS, all cached and marked (MiB)", m.hwm/(1<<20))
	add("peak RSS per object (KiB)", m.hwm/1024/float64(n))
	add("mark all: objects/s after leading", m.perSecond)
	add("mark all: controller CPU seconds (start → all marked)", m.cpu)
	add("controller CPU per object, start → all marked (ms)", m.cpu*1000/float64(n))
	add("mark all: apiserver + etcd CPU seconds", m.control)
	add("mark all: API requests", float64(m.requests))
	if r.fw.program == clientGo.program {
		return
	}

	r.extra = append(r.extra, "--objects", strconv.Itoa(n))
	p1 := r.startProc("r1", r.tag)
	if coldStandby[fw] {
		time.Sleep(standbySettle)
	} else if _, ok := p1.awaitLog("synced", r.timeout()); !ok {
		panic("standby: no synced line")
	}
	time.Sleep(2 * time.Second) // the standby at rest
	_, warm := p1.logTime("synced")
	sc.warm[fw] = append(sc.warm[fw], warm)
	cpuBefore, _ := p1.usage()
	holder := sc.st.holder(r.tag)
	killed := time.Now()
	p0.kill()
	_, leaseAt, ok := sc.st.holderAfter(r.tag, killed, holder, 2*time.Minute)
	if !ok {
		panic("no new lease holder after SIGKILL")
	}
	lead, ok := p1.awaitLog("leading", time.Minute)
	if !ok {
		panic("successor: no leading line")
	}
	first, ok := p1.awaitLog("first-reconcile", r.timeout())
	if !ok {
		panic("successor: no first-reconcile line")
	}
	all, ok := p1.awaitLog("handled-all", r.timeout())
	if !ok {
		panic("successor: no handled-all line")
	}
	cpuAfter, hwm1 := p1.usage()
	add("takeover: SIGKILL → successor holds the lease (s)", leaseAt.Sub(killed).Seconds())
	add(fmt.Sprintf("takeover: winning → first reconcile, %d cached (ms)", n), first.Sub(lead).Seconds()*1000)
	add("takeover: winning → handler called for every key (s)", all.Sub(lead).Seconds())
	add("takeover: successor's CPU seconds, SIGKILL → every key handled", cpuAfter-cpuBefore)
	add("takeover: successor's peak RSS (MiB)", hwm1/(1<<20))
	if w := d.lastWrite(r.offset, p1.ua); !w.IsZero() {
		logf("%s: the successor wrote, though every object carried its mark", r.tag)
	}
	logf("%s: takeover: standby warm %v, lease %v after SIGKILL, winning → first reconcile %v, → every key handled %v",
		r.tag, warm, leaseAt.Sub(killed).Round(time.Millisecond), first.Sub(lead), all.Sub(lead).Round(time.Millisecond))
}
