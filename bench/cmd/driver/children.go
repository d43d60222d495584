package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	toolswatch "k8s.io/client-go/tools/watch"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/internal/testkit/audit"
)

const childrenBegin, childrenEnd = "<!-- bench-children:begin -->", "<!-- bench-children:end -->"

// childrenSettle is how long the driver waits after a process's first full
// pass ("handled-all") before it reads the process's CPU and ends the
// window its requests are counted in: writes the pass set off (the
// parent's own update events running the handlers again) land in it.
const childrenSettle = 2 * time.Second

// The CPU profiles of the children scenario (--profile-dir): the converge
// process's first childrenProfileConverge, the restarted process's first
// childrenProfileResync. The driver waits for them before it stops the
// process.
const (
	childrenProfileConverge = 30 * time.Second
	childrenProfileResync   = 10 * time.Second
)

// childrenRun: a new namespace with d.objects Deployments; one replica of
// the framework's generating handler declares 3 children for each.
// Converge: from its start until every child is there as declared. Resync:
// the process is stopped and a new one started (a rolling upgrade) with
// everything in place; its first full pass, counted until "handled-all"
// plus childrenSettle.
func (d *driver) childrenRun(r *run) {
	images := d.createParents(r)
	defer d.deleteParents(r.ns)
	cs := followChildren(d.cs, r.ns, images)
	defer cs.cancel()
	n := 3 * len(images)
	workload := []string{"--workload", common.WorkloadChildren, "--parents", strconv.Itoa(len(images))}
	r.extra = workload
	res := d.children
	fw := r.fw.name

	// Converge.
	profile := func(name string, d time.Duration) []string {
		return []string{"--cpuprofile", filepath.Join(r.d.profDir, r.tag+"-"+name+".ctl.pprof"), "--cpuprofile-for", d.String()}
	}
	if d.profDir != "" {
		r.extra = append(slices.Clone(workload), profile("converge", childrenProfileConverge)...)
	}
	controlBefore := cpuOf(d.control...)
	p1 := r.startProc("r0", "")
	if d.profDir != "" {
		go d.profileAPIServer(filepath.Join(d.profDir, r.tag+"-converge.apiserver.pprof"), 2*time.Second, 8)
	}
	doneAt, ok := cs.allGood(n, r.timeout())
	if !ok {
		panic(fmt.Sprintf("converge: %d of %d children as declared in time", cs.count(), n))
	}
	if _, ok := p1.awaitLog("handled-all", time.Minute); !ok {
		panic("converge: no handled-all line")
	}
	time.Sleep(childrenSettle)
	end := time.Now()
	cpu, hwm := p1.usage()
	control := cpuOf(d.control...) - controlBefore
	lead, ok := p1.logTime("leading")
	if !ok {
		panic("converge: no leading line")
	}
	if d.profDir != "" {
		time.Sleep(time.Until(p1.started.Add(childrenProfileConverge + time.Second)))
	}
	p1.stop(30 * time.Second)
	time.Sleep(time.Second) // the process's watches, closed by its exit, are in the audit log
	conv := d.requestsOf(r.offset, p1.ua, p1.started, end)
	res.add(fw, fmt.Sprintf("converge: process start → %d children as declared (s)", n), doneAt.Sub(p1.started).Seconds())
	res.add(fw, fmt.Sprintf("converge: leading → %d children as declared (s)", n), doneAt.Sub(lead).Seconds())
	res.add(fw, "converge: controller CPU seconds", cpu)
	res.add(fw, "converge: apiserver + etcd CPU seconds", control)
	res.add(fw, "converge: API requests", float64(conv.total))
	res.add(fw, "converge: mutating requests on children", float64(conv.mutatingOn(childResources...)))
	res.add(fw, "converge: mutating requests on parents (Deployments)", float64(conv.mutatingOn("deployments")))
	res.add(fw, "converge: peak RSS (MiB)", hwm/(1<<20))
	logf("%s: converge %.2fs from start, %.2fs from leading, cpu %.2fs (apiserver+etcd %.2fs), rss %.0f MiB, requests %s",
		r.tag, doneAt.Sub(p1.started).Seconds(), doneAt.Sub(lead).Seconds(), cpu, control, hwm/(1<<20), conv)

	// Resync: a new process, a Lease of its own (so it leads at once, as a
	// new leader after a handoff would), everything in place.
	r.lease = r.tag + "-resync"
	r.extra = workload
	if d.profDir != "" {
		r.extra = append(slices.Clone(workload), profile("resync", childrenProfileResync)...)
	}
	offset := d.auditSize()
	controlBefore = cpuOf(d.control...)
	p2 := r.startProc("r1", "")
	handled, ok := p2.awaitLog("handled-all", r.timeout())
	if !ok {
		panic("resync: no handled-all line")
	}
	time.Sleep(childrenSettle)
	end = time.Now()
	cpu, _ = p2.usage()
	control = cpuOf(d.control...) - controlBefore
	lead, ok = p2.logTime("leading")
	if !ok {
		panic("resync: no leading line")
	}
	if got := cs.count(); got != n {
		panic(fmt.Sprintf("resync: %d of %d children as declared after the pass", got, n))
	}
	if d.profDir != "" {
		time.Sleep(time.Until(p2.started.Add(childrenProfileResync + time.Second)))
	}
	p2.stop(30 * time.Second)
	time.Sleep(time.Second)
	rs := d.requestsOf(offset, p2.ua, p2.started, end)
	res.add(fw, fmt.Sprintf("resync: process start → %d parents handled (s)", len(images)), handled.Sub(p2.started).Seconds())
	res.add(fw, fmt.Sprintf("resync: leading → %d parents handled (s)", len(images)), handled.Sub(lead).Seconds())
	res.add(fw, "resync: controller CPU seconds", cpu)
	res.add(fw, "resync: apiserver + etcd CPU seconds", control)
	res.add(fw, "resync: API requests", float64(rs.total))
	for _, v := range []string{"get", "list", "watch"} {
		res.add(fw, "resync: "+v+" requests", float64(rs.verbs[v]))
	}
	res.add(fw, "resync: mutating requests on children and parents", float64(rs.mutatingOn(append(slices.Clone(childResources), "deployments")...)))
	logf("%s: resync %.2fs from start to handled-all, %.2fs from leading, cpu %.2fs (apiserver+etcd %.2fs), requests %s",
		r.tag, handled.Sub(p2.started).Seconds(), handled.Sub(lead).Seconds(), cpu, control, rs)
}

// childResources are the audit log's resources of the children.
var childResources = []string{"configmaps", "secrets", "serviceaccounts"}

// createParents makes a namespace of the run's own and d.objects
// Deployments in it (no replicas: nothing else acts on them), and returns
// each one's image by name.
func (d *driver) createParents(r *run) map[string]string {
	ctx := context.Background()
	ns, err := d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: r.tag + "-"}}, metav1.CreateOptions{})
	must(err)
	r.ns = ns.Name
	images := make(map[string]string, d.objects)
	for i := range d.objects {
		images[fmt.Sprintf("app-%05d", i)] = common.Image(i)
	}
	began := time.Now()
	zero := int32(0)
	must(createEach(d.objects, func(i int) error {
		name := fmt.Sprintf("app-%05d", i)
		labels := map[string]string{"app": name}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: &zero,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: images[name]}}},
				},
			},
		}
		_, err := d.cs.AppsV1().Deployments(r.ns).Create(ctx, dep, metav1.CreateOptions{})
		return err
	}))
	logf("%s: created %d Deployments in %s in %v", r.tag, d.objects, r.ns, time.Since(began).Round(time.Millisecond))
	return images
}

// deleteParents deletes the run's objects, so that the control plane
// carries no more than one run's worth. (Deployments that carry rein's
// finalizer stay, being deleted, with no controller left to release them;
// nothing watches that namespace any more.)
func (d *driver) deleteParents(ns string) {
	if ns == "" {
		return
	}
	ctx := context.Background()
	all := metav1.ListOptions{}
	_ = d.cs.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all)
	_ = d.cs.CoreV1().Secrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all)
	_ = d.cs.CoreV1().ServiceAccounts(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all)
	_ = d.cs.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all)
}

// requestCounts are one process's requests in a window, from the audit log.
type requestCounts struct {
	total int
	verbs map[string]int            // verb → requests
	by    map[string]map[string]int // verb → resource → requests
}

func isMutating(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

func (c requestCounts) mutatingOn(resources ...string) int {
	n := 0
	for v, byRes := range c.by {
		if !isMutating(v) {
			continue
		}
		for _, r := range resources {
			n += byRes[r]
		}
	}
	return n
}

// String lists the requests as "verb resource=count", sorted.
func (c requestCounts) String() string {
	var parts []string
	for v, byRes := range c.by {
		for r, k := range byRes {
			parts = append(parts, fmt.Sprintf("%s %s=%d", v, r, k))
		}
	}
	slices.Sort(parts)
	return fmt.Sprintf("%d [%s]", c.total, strings.Join(parts, ", "))
}

// requestsOf counts ua's distinct requests received in [from, to], by verb
// and resource (ua's own and the ones derived from it, as uaCount).
func (d *driver) requestsOf(offset int64, ua string, from, to time.Time) requestCounts {
	c := requestCounts{verbs: map[string]int{}, by: map[string]map[string]int{}}
	seen := map[string]bool{}
	d.scanAudit(offset, func(ev *audit.Event) {
		if seen[ev.AuditID] || ev.RequestReceived.Before(from) || ev.RequestReceived.After(to) {
			return
		}
		if ev.UserAgent != ua && !strings.HasPrefix(ev.UserAgent, ua+"/") {
			return
		}
		seen[ev.AuditID] = true
		c.total++
		c.verbs[ev.Verb]++
		res := ev.ObjectRef.Resource
		if res == "" {
			res = "(none)" // discovery
		}
		if c.by[ev.Verb] == nil {
			c.by[ev.Verb] = map[string]int{}
		}
		c.by[ev.Verb][res]++
	})
	return c
}

// childState follows, by watches, the children in one namespace: which of
// them are as declared for their parent.
type childState struct {
	mu      sync.Mutex
	images  map[string]string // parent name → image
	good    map[string]bool   // "kind/name" → as declared
	n       int               // good children
	changed chan struct{}
	cancel  context.CancelFunc
	// lastGood is when a child last became as declared: once all are,
	// when the last of them did.
	lastGood time.Time
}

func followChildren(cs kubernetes.Interface, ns string, images map[string]string) *childState {
	ctx, cancel := context.WithCancel(context.Background())
	s := &childState{images: images, good: map[string]bool{}, changed: make(chan struct{}), cancel: cancel}
	type kind struct {
		list  func() (runtime.Object, error)
		watch func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)
	}
	all := metav1.ListOptions{}
	kinds := []kind{
		{func() (runtime.Object, error) { return cs.CoreV1().ConfigMaps(ns).List(ctx, all) }, cs.CoreV1().ConfigMaps(ns).Watch},
		{func() (runtime.Object, error) { return cs.CoreV1().Secrets(ns).List(ctx, all) }, cs.CoreV1().Secrets(ns).Watch},
		{func() (runtime.Object, error) { return cs.CoreV1().ServiceAccounts(ns).List(ctx, all) }, cs.CoreV1().ServiceAccounts(ns).Watch},
	}
	for _, k := range kinds {
		list, err := k.list()
		must(err)
		items, err := meta.ExtractList(list)
		must(err)
		for _, obj := range items {
			s.set(obj, false)
		}
		listMeta, err := meta.ListAccessor(list)
		must(err)
		rv := listMeta.GetResourceVersion()
		w, err := toolswatch.NewRetryWatcherWithContext(ctx, rv, lw{k.watch})
		must(err)
		go func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				if ev.Object == nil || (ev.Type != watch.Added && ev.Type != watch.Modified && ev.Type != watch.Deleted) {
					continue
				}
				s.mu.Lock()
				s.set(ev.Object, ev.Type == watch.Deleted)
				close(s.changed)
				s.changed = make(chan struct{})
				s.mu.Unlock()
			}
		}()
	}
	return s
}

// set records whether obj is as declared (called under the lock, or before
// the watches start).
func (s *childState) set(obj runtime.Object, deleted bool) {
	var key string
	ok := false
	has := func(m metav1.Object, labels map[string]string) bool {
		for k, v := range labels {
			if m.GetLabels()[k] != v {
				return false
			}
		}
		return true
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		key = "ConfigMap/" + o.Name
		if image, found := s.images[o.Name]; found {
			cm, _, labels := common.ChildData(o.Name, image, 0)
			ok = maps.Equal(o.Data, cm) && has(o, labels)
		}
	case *corev1.Secret:
		key = "Secret/" + o.Name
		if image, found := s.images[o.Name]; found {
			_, data, labels := common.ChildData(o.Name, image, 0)
			ok = maps.EqualFunc(o.Data, data, bytes.Equal) && has(o, labels)
		}
	case *corev1.ServiceAccount:
		key = "ServiceAccount/" + o.Name
		if image, found := s.images[o.Name]; found {
			_, _, labels := common.ChildData(o.Name, image, 0)
			ok = has(o, labels) && o.AutomountServiceAccountToken != nil && !*o.AutomountServiceAccountToken
		}
	default:
		return
	}
	ok = ok && !deleted
	if s.good[key] != ok {
		if ok {
			s.n++
			s.lastGood = time.Now()
		} else {
			s.n--
		}
	}
	if ok {
		s.good[key] = true
	} else {
		delete(s.good, key)
	}
}

func (s *childState) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// allGood waits until n children are as declared and returns when the
// last of them was seen so.
func (s *childState) allGood(n int, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		done, at, ch := s.n >= n, s.lastGood, s.changed
		s.mu.Unlock()
		if done {
			return at, true
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// childrenReport is the children scenario's section of the report.
func (d *driver) childrenReport(repeats, objects, workers int, binDir string, took time.Duration) string {
	var names []string
	for _, f := range frameworks {
		if f.name == "rein" || f.name == "wrangler" {
			names = append(names, f.name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Side by side: generating handlers (rein, wrangler)\n\n", childrenBegin)
	fmt.Fprintf(&b, "Written by `bench/cmd/driver --scenarios children` on %s in %v. Each framework runs the same\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second))
	fmt.Fprintf(&b, "leader-elected controller (`bench/cmd/*/children.go`): a generating handler on Deployments that declares\n")
	fmt.Fprintf(&b, "3 children per Deployment, a ConfigMap, a Secret and a ServiceAccount named after it (data and labels\n")
	fmt.Fprintf(&b, "derived from its name and image), and returns the status unchanged. rein: the generated\n")
	fmt.Fprintf(&b, "`RegisterDeploymentGeneratingHandler` with an `apply.Set` of the three kinds (server-side apply) and\n")
	fmt.Fprintf(&b, "`KeepChildren` (the children carry owner references; the garbage collector deletes them, no finalizer). wrangler: its generated\n")
	fmt.Fprintf(&b, "`RegisterDeploymentGeneratingHandler` with `apply.NewForConfig(...).WithCacheTypes(...)` of the three\n")
	fmt.Fprintf(&b, "kinds (client-side three-way merge against the last-applied annotation; no finalizer). %d Deployments\n", objects)
	fmt.Fprintf(&b, "(replicas 0, no controller-manager) in a namespace of each run's own, %d workers, lease %v / renew\n", workers, leaseDuration)
	fmt.Fprintf(&b, "deadline %v / retry %v, %d rounds with the frameworks interleaved. Cells: median (min–max, n).\n\n", renewDeadline, retryPeriod, repeats)
	fmt.Fprintf(&b, "- **converge**: from the process's start (and from its \"leading\" line) until the driver's watches\n")
	fmt.Fprintf(&b, "  show all %d children as declared. CPU and peak RSS come from /proc, requests (its user agent) from\n", 3*objects)
	fmt.Fprintf(&b, "  the audit log, both up to %v after its first full pass (a log line once every Deployment has been\n", childrenSettle)
	fmt.Fprintf(&b, "  through the handlers). apiserver + etcd CPU is theirs over the same span.\n")
	fmt.Fprintf(&b, "- **resync**: the converge process is stopped (SIGTERM) and a new one started, as a rolling upgrade\n")
	fmt.Fprintf(&b, "  does, with every child in place (a Lease of its own, so it leads at once): from its start until its\n")
	fmt.Fprintf(&b, "  first full pass; CPU and requests up to %v after it. Watches are counted too (the audit log records\n", childrenSettle)
	fmt.Fprintf(&b, "  them when they end, with the process). Mutating: create, update, patch, delete; API requests also\n")
	fmt.Fprintf(&b, "  count the election's Lease requests, the mutating figures do not.\n\n")
	if len(names) == 2 {
		b.WriteString(d.childrenTargets(objects))
	}
	b.WriteString(table(d.children, names))
	b.WriteString("\nVersions: " + versions(binDir) + "\n\n")
	b.WriteString("Machine: " + machine() + "\n\n")
	fmt.Fprintf(&b, "Reproduce: `make bench-children`, that is `cd bench && go run ./cmd/driver --scenarios children --repeats %d --objects %d --out ../docs/benchmarks.md`\n", repeats, objects)
	b.WriteString("(`--profile-dir DIR` adds CPU profiles of each converge and resync process, and of the apiserver during converge).\n")
	b.WriteString(childrenEnd + "\n")
	return b.String()
}

// childrenTargets checks rein's figures against the targets of the
// generating handler, as ratios against wrangler in the same run.
func (d *driver) childrenTargets(objects int) string {
	v := d.children.values
	var b strings.Builder
	b.WriteString("| target for rein | rein | wrangler | result |\n|---|---|---|---|\n")
	ratio := func(target, fig, unit string, limit float64) {
		r, w := v[fig]["rein"], v[fig]["wrangler"]
		if len(r) == 0 || len(w) == 0 || median(w) == 0 {
			return
		}
		q := median(r) / median(w)
		fmt.Fprintf(&b, "| %s | %s %s | %s %s | %s× (%s) |\n", target, num(median(r)), unit, num(median(w)), unit, num(q), verdict(q <= limit))
	}
	ratio(fmt.Sprintf("converge time ≤ 0.8× wrangler's (process start → %d children)", 3*objects),
		fmt.Sprintf("converge: process start → %d children as declared (s)", 3*objects), "s", 0.8)
	ratio("controller CPU ≤ 0.5× wrangler's: converge", "converge: controller CPU seconds", "s", 0.5)
	ratio("controller CPU ≤ 0.5× wrangler's: resync", "resync: controller CPU seconds", "s", 0.5)
	if fig := "resync: mutating requests on children and parents"; len(v[fig]["rein"]) > 0 {
		r, w := v[fig]["rein"], v[fig]["wrangler"]
		ws := "—"
		if len(w) > 0 {
			ws = fmt.Sprintf("max %s", num(slices.Max(w)))
		}
		fmt.Fprintf(&b, "| resync: 0 mutating requests | max %s over %d runs | %s | %s |\n", num(slices.Max(r)), len(r), ws, verdict(slices.Max(r) == 0))
	}
	b.WriteString("\n")
	return b.String()
}
