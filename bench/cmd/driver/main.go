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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

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
	binaries map[string]string
	logDir   string
	workers  int
	objects  int
	write    string
	idle     time.Duration
	results  *results
	profDir  string
	ctlProf  bool
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	repeats := flag.Int("repeats", 5, "rounds; every round runs every scenario for every framework, interleaved")
	objects := flag.Int("objects", 5000, "ConfigMaps per run")
	workers := flag.Int("workers", 5, "workers of every controller")
	out := flag.String("out", "", "markdown file to write the report into (its bench section is replaced; empty: stdout)")
	scen := flag.String("scenarios", "throughput,handoff,crash,idle", "comma-separated: throughput, handoff (graceful; gives winning → first reconcile too, alias winning), crash, idle (measured inside handoff runs)")
	fws := flag.String("frameworks", "", "comma-separated subset of rein,wrangler,controller-runtime,controller-runtime+warmup (default all)")
	idle := flag.Duration("idle", 30*time.Second, "idle window for the election-load figure")
	binDir := flag.String("bindir", "", "kube-apiserver and etcd (default $REIN_TESTBIN or ../bin)")
	write := flag.String("write", "patch", "how every controller writes its mark: patch (JSON merge patch) or update (PUT of the cached object)")
	profileDir := flag.String("profile-dir", "", "write CPU profiles of the apiserver (4 s) and of the controller (8 s from start), taken during each throughput run, into this folder")
	flag.Parse()

	want := map[string]bool{}
	for _, s := range strings.Split(*scen, ",") {
		want[strings.TrimSpace(s)] = true
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
			}
		}
		frameworks = sel
	}
	if *binDir == "" && os.Getenv(testenv.BinDirEnv) == "" {
		if abs, err := filepath.Abs("../bin"); err == nil {
			*binDir = abs
		}
	}

	tmp, err := os.MkdirTemp("", "rein-bench-")
	must(err)
	d := &driver{binaries: map[string]string{}, logDir: tmp, workers: *workers, objects: *objects, idle: *idle, results: newResults(), profDir: *profileDir, write: *write}
	logf("building controllers into %s", tmp)
	for _, prog := range []string{"rein", "wrangler", "controllerruntime"} {
		o := filepath.Join(tmp, prog)
		b := exec.Command("go", "build", "-o", o, "./cmd/"+prog)
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		must(b.Run())
		d.binaries[prog] = o
	}
	d.env, err = testenv.Start(testenv.Options{BinDir: *binDir, Audit: true})
	must(err)
	defer func() { _ = d.env.Stop() }()
	cs, err := d.env.Admin().Clientset()
	must(err)
	d.cs = cs

	for round := 1; round <= *repeats; round++ {
		for _, f := range frameworks {
			if want["throughput"] {
				d.guard(f, round, "throughput", d.throughput)
			}
		}
		for _, f := range frameworks {
			if want["handoff"] || want["idle"] || want["winning"] {
				d.guard(f, round, "handoff", func(r *run) { d.handoff(r, syscall.SIGTERM, want["idle"]) })
			}
		}
		for _, f := range frameworks {
			if want["crash"] {
				d.guard(f, round, "crash", func(r *run) { d.handoff(r, syscall.SIGKILL, false) })
			}
		}
	}
	report := d.report(*repeats, *objects, *workers, *binDir)
	if *out == "" {
		fmt.Print(report)
		return
	}
	must(writeSection(*out, report))
	logf("wrote %s; logs in %s", *out, tmp)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// run is one scenario run of one framework in its own namespace.
type run struct {
	d      *driver
	fw     framework
	tag    string
	ns     string
	st     *state
	offset int64
	procs  []*proc
}

func (d *driver) guard(f framework, round int, scenario string, fn func(*run)) {
	r := &run{d: d, fw: f, tag: fmt.Sprintf("%s-%s-%d", scenario, strings.ReplaceAll(f.name, "+", "-"), round)}
	defer func() {
		for _, p := range r.procs {
			p.kill()
		}
		if r.st != nil {
			r.st.cancel()
		}
		if r.ns != "" {
			// testenv runs no namespace controller: delete the objects
			// themselves so the apiserver's cache does not grow run by run.
			_ = d.cs.CoreV1().ConfigMaps(r.ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
			_ = d.cs.CoreV1().Namespaces().Delete(context.Background(), r.ns, metav1.DeleteOptions{})
		}
		if e := recover(); e != nil {
			logf("%s: FAILED: %v", r.tag, e)
			for _, p := range r.procs {
				logf("--- %s log tail:\n%s", p.name, p.tail())
			}
			d.results.fail(f.name, scenario)
		}
	}()
	logf("%s: start", r.tag)
	r.setup()
	fn(r)
}

func (r *run) setup() {
	ctx := context.Background()
	ns, err := r.d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}, metav1.CreateOptions{})
	must(err)
	r.ns = ns.Name
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < r.d.objects; i = int(next.Add(1)) - 1 {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i)}, Data: map[string]string{"v": "1"}}
				if _, err := r.d.cs.CoreV1().ConfigMaps(r.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		panic(e)
	}
	r.st = follow(r.d.cs, r.ns)
	r.offset = r.d.auditSize()
}

func (r *run) timeout() time.Duration {
	return 2*time.Minute + time.Duration(r.d.objects)*20*time.Millisecond
}

// throughput: one replica, N unmarked objects.
func (d *driver) throughput(r *run) {
	p := r.startProc("r0", "1")
	if d.profDir != "" {
		go d.profileAPIServer(filepath.Join(d.profDir, r.tag+".pprof"))
	}
	if !r.st.allMarked("1", d.objects, r.timeout()) {
		panic("not all marked in time")
	}
	if d.profDir != "" {
		// the controller writes its profile 6 s after its start
		time.Sleep(time.Until(p.started.Add(7 * time.Second)))
	}
	cpu, hwm := p.usage()
	last := d.lastWrite(r.offset, p.ua)
	lead, ok := p.logTime("leading")
	if !ok {
		panic("no leading line")
	}
	res := d.results
	res.add(r.fw.name, "throughput: process start → all written (s)", last.Sub(p.started).Seconds())
	res.add(r.fw.name, "throughput: leading → all written (s)", last.Sub(lead).Seconds())
	res.add(r.fw.name, "throughput: objects/s after leading", float64(d.objects)/last.Sub(lead).Seconds())
	res.add(r.fw.name, "throughput: CPU seconds", cpu)
	res.add(r.fw.name, "throughput: peak RSS (MiB)", hwm/(1<<20))
	logf("%s: %.2fs from start, %.2fs from leading, cpu %.2fs, rss %.0f MiB", r.tag, last.Sub(p.started).Seconds(), last.Sub(lead).Seconds(), cpu, hwm/(1<<20))
}

// handoff: 3 replicas, each with its own mark so that every new leader has
// work on every object; stop the leader with sig.
func (d *driver) handoff(r *run, sig syscall.Signal, idle bool) {
	what := "graceful handoff (SIGTERM)"
	if sig == syscall.SIGKILL {
		what = "crash takeover (SIGKILL)"
	}
	for i := range 3 {
		r.startProc("r"+strconv.Itoa(i), "r"+strconv.Itoa(i))
	}
	leader := r.awaitLeading(nil, time.Minute)
	if !r.st.allMarked(leader.mark, d.objects, r.timeout()) {
		panic("first leader did not mark all in time")
	}
	// Let standbys settle (caches synced, warm-up done).
	time.Sleep(5 * time.Second)
	if idle {
		from := time.Now()
		time.Sleep(d.idle)
		to := time.Now()
		time.Sleep(time.Second) // audit log written
		counts := d.requests(r.offset, from, to)
		secs := to.Sub(from).Seconds()
		var standby float64
		n := 0
		for _, p := range r.procs {
			if p != leader {
				standby += float64(uaCount(counts, p.ua)) / secs
				n++
			}
		}
		d.results.add(r.fw.name, "idle: leader requests/s", float64(uaCount(counts, leader.ua))/secs)
		d.results.add(r.fw.name, "idle: standby requests/s (mean of 2)", standby/float64(n))
	}
	oldHolder := r.st.holder()
	t0 := time.Now()
	must(leader.cmd.Process.Signal(sig))
	_, leaseAt, ok := r.st.holderAfter(t0, oldHolder, 2*time.Minute)
	if !ok {
		panic("no new lease holder")
	}
	succ := r.awaitLeading(leader, time.Minute)
	first, ok := d.firstWrite(r.offset, succ.ua, time.Minute)
	if !ok {
		panic("successor wrote nothing")
	}
	res := d.results
	res.add(r.fw.name, what+": → successor holds the lease (s)", leaseAt.Sub(t0).Seconds())
	res.add(r.fw.name, what+": → successor's first write (s)", first.Sub(t0).Seconds())
	lead, _ := succ.logTime("leading")
	if sig == syscall.SIGTERM {
		if fr, ok := succ.logTime("first-reconcile"); ok {
			res.add(r.fw.name, fmt.Sprintf("winning → first reconcile, %d cached objects (ms)", d.objects), fr.Sub(lead).Seconds()*1000)
		}
	}
	logf("%s: lease %v, first write %v", r.tag, leaseAt.Sub(t0), first.Sub(t0))
	// Graceful exit: the old leader should have ended.
	if sig == syscall.SIGTERM {
		select {
		case <-leader.exited:
		case <-time.After(30 * time.Second):
			logf("%s: old leader still running 30s after SIGTERM", r.tag)
		}
	}
}

// awaitLeading waits for a running replica other than not that logged "leading".
func (r *run) awaitLeading(not *proc, timeout time.Duration) *proc {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, p := range r.procs {
			if p == not || !p.running() {
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

// profileAPIServer fetches a CPU profile of the apiserver into path.
func (d *driver) profileAPIServer(path string) {
	time.Sleep(2 * time.Second) // past process start and the initial list
	data, err := d.cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "4").DoRaw(context.Background())
	if err != nil {
		logf("profile: %v", err)
		return
	}
	_ = os.WriteFile(path, data, 0o644)
}
