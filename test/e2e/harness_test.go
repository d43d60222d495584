package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	toolswatch "k8s.io/client-go/tools/watch"

	"github.com/rein-k8s/rein/internal/netfault"
	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/internal/testkit/leasehistory"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// Short election timings keep the tests fast; the benchmarks use 15/10/2s.
const (
	leaseDuration = 2 * time.Second
	renewDeadline = 1500 * time.Millisecond
	retryPeriod   = 300 * time.Millisecond
	objects       = 30
)

var (
	env      *testenv.Env
	binaries = map[string]string{} // program → built binary
	// replicaBinary runs another build of the replica program, e.g. one of
	// an earlier rein commit, to measure a change before and after.
	replicaBinary = flag.String("replica-binary", "", "run this replica binary instead of building ./replica")
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "rein-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	// Tests run the replicas with the race detector; benchmarks measure
	// them as users would run them.
	flag.Parse()
	race := "-race"
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		race = "-race=false"
	}
	for _, prog := range []string{"replica", "clientgo"} {
		out := filepath.Join(dir, prog)
		build := exec.Command("go", "build", race, "-o", out, "./"+prog)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return 0, fmt.Errorf("build %s: %w", prog, err)
		}
		binaries[prog] = out
	}
	if *replicaBinary != "" {
		binaries["replica"] = *replicaBinary
	}
	// ShardedListAndWatch (alpha) for the partitioned caches of
	// TestPartitionedShardedReplicas; requests without a shard selector
	// are served as without it.
	env, err = testenv.Start(testenv.Options{Audit: true, APIServerFlags: map[string][]string{"feature-gates": {"ShardedListAndWatch=true"}}})
	if err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()
	return m.Run(), nil
}

// cluster is one test's namespace, Lease, RBAC and ConfigMaps.
type cluster struct {
	t        testing.TB
	ns       string
	admin    kubernetes.Interface
	leases   *leaseLog
	replicas []*replica
	version  int    // the data["v"] every ConfigMap has now
	dir      string // replicas' logs
	objects  int    // how many ConfigMaps
}

const leaseName = "e2e"

func newCluster(t testing.TB) *cluster { return newClusterWith(t, objects) }

// newClusterWith is newCluster with n ConfigMaps.
func newClusterWith(t testing.TB, n int) *cluster {
	t.Helper()
	ctx := context.Background()
	admin, err := env.Admin().Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Logs live in a folder made before the cleanup below is registered,
	// so that they are still there when it prints them.
	c := &cluster{t: t, ns: ns.Name, admin: admin, version: 1, dir: t.TempDir()}
	// The least a replica needs, granted to the group all replica users
	// share: the test proves it is enough.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "replica"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "patch", "update"}},
			// delete: a sharded group's members delete their member Lease
			// when they leave, and collect dead members'.
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
		},
	}
	if _, err := admin.RbacV1().Roles(c.ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "replica"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "replica"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "e2e-replicas"}},
	}
	if _, err := admin.RbacV1().RoleBindings(c.ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.objects = n
	createConfigMaps(t, admin, c.ns, n)
	c.leases = watchLease(t, c.ns, leaseName)
	t.Cleanup(func() {
		for _, r := range c.replicas {
			r.kill()
		}
		if t.Failed() {
			for _, r := range c.replicas {
				t.Logf("--- log of %s:\n%s", r.name, r.logTail(60))
			}
		}
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), c.ns, metav1.DeleteOptions{})
	})
	return c
}

// replica is one running process.
type replica struct {
	name    string // unique in the test
	podName string // its POD_NAME
	program string
	cmd     *exec.Cmd
	logPath string
	proxy   *proxy
	exited  chan struct{}
	code    int

	idOnce sync.Once
	id     string
}

type replicaOptions struct {
	program string   // "replica" (default) or "clientgo"
	podName string   // default: the replica's name
	proxied bool     // reach the apiserver through a proxy the test can cut
	args    []string // more flags; they override the defaults
}

// start runs a replica as its own testenv user.
func (c *cluster) start(name string, o replicaOptions) *replica {
	t := c.t
	t.Helper()
	if o.program == "" {
		o.program = "replica"
	}
	if o.podName == "" {
		o.podName = name
	}
	user, err := env.AddUser("replica-"+name, "e2e-replicas")
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, podName: o.podName, program: o.program, exited: make(chan struct{})}
	kubeconfig := user.KubeconfigPath
	if o.proxied {
		r.proxy = newProxy(t, env.Config().Host)
		kubeconfig = r.proxy.kubeconfig(t, user.KubeconfigPath)
	}
	r.logPath = filepath.Join(c.dir, name+".log")
	logFile, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(binaries[o.program],
		"--kubeconfig", kubeconfig, "--namespace", c.ns,
		"--leader-elect-resource-name", leaseName, "--leader-elect-resource-namespace", c.ns,
		"--leader-elect-lease-duration", leaseDuration.String(),
		"--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(),
		"--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0",
		"--drain-grace", "5s")
	r.cmd.Args = append(r.cmd.Args, o.args...)
	r.cmd.Env = append(os.Environ(), "POD_NAME="+o.podName)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := r.cmd.Wait()
		_ = logFile.Close()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			r.code = 0
		case errors.As(err, &exitErr):
			r.code = exitErr.ExitCode()
		default:
			r.code = -1
		}
		close(r.exited)
	}()
	c.replicas = append(c.replicas, r)
	return r
}

func (r *replica) signal(sig syscall.Signal) error { return r.cmd.Process.Signal(sig) }

func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Kill()
	<-r.exited
	if r.proxy != nil {
		_ = r.proxy.Close()
	}
}

// awaitExit waits for the process to end and returns its exit code.
func (r *replica) awaitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-r.exited:
		return r.code
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v", r.name, timeout)
		return 0
	}
}

func (r *replica) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *replica) logTail(lines int) string {
	data, _ := os.ReadFile(r.logPath)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// identity reads the replica's lease identity from its log (every rein
// log line carries identity=...; the client-go replica prints it first).
func (r *replica) identity() string {
	r.idOnce.Do(func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			data, _ := os.ReadFile(r.logPath)
			if _, after, ok := strings.Cut(string(data), "identity="); ok {
				if fields := strings.Fields(after); len(fields) > 0 {
					r.id = strings.Trim(fields[0], `"`)
				}
				return
			}
			if !r.running() {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return r.id
}

// logged waits for the replica's log to name field (e.g. "webhooks=") and
// returns its value; it fails the test when the replica exits first or
// does not name it within 30s.
func (r *replica) logged(t testing.TB, field string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(r.logPath)
		if _, after, ok := strings.Cut(string(data), field); ok {
			if fields := strings.Fields(after); len(fields) > 0 {
				return strings.Trim(fields[0], `"`)
			}
		}
		if !r.running() || time.Now().After(deadline) {
			t.Fatalf("replica %s did not log %s: %s", r.name, field, r.logTail(10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// owner returns the running replica whose identity holds the lease.
func (c *cluster) owner(holder string) *replica {
	if holder == "" {
		return nil
	}
	for _, r := range c.replicas {
		if r.running() && r.identity() == holder {
			return r
		}
	}
	return nil
}

// leaseLog records every holder change of the cluster's Lease.
type leaseLog struct {
	*leasehistory.History
}

// termStart is when the term that holds the Lease at t began (by the
// records' acquire times, as HolderAt counts them); zero before any.
func (l *leaseLog) termStart(t time.Time) time.Time {
	changes, _ := l.Changes()
	var from time.Time
	for _, ch := range changes {
		start := ch.Acquired
		if start.IsZero() {
			start = ch.Seen
		}
		if !start.After(t) && !start.Before(from) {
			from = start
		}
	}
	return from
}

func watchLease(t testing.TB, ns, name string) *leaseLog {
	ctx, cancel := context.WithCancel(context.Background())
	h, err := leasehistory.Watch(ctx, env.Config(), ns, name)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); h.Wait() })
	return &leaseLog{h}
}

// awaitHolder waits for a holder change after index from that pred accepts;
// it returns the holder, when it was seen, and the index to wait from next.
func (l *leaseLog) awaitHolder(t testing.TB, from int, timeout time.Duration, pred func(string) bool) (string, time.Time, int) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		changes, changed := l.Changes()
		for i := from; i < len(changes); i++ {
			if pred(changes[i].Holder) {
				return changes[i].Holder, changes[i].Seen, i + 1
			}
		}
		from = len(changes)
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no matching lease holder within %v; changes: %+v", timeout, changes)
		}
	}
}

// count is the number of changes so far.
func (l *leaseLog) count() int {
	changes, _ := l.Changes()
	return len(changes)
}

// awaitLeader waits until a running replica of c holds the lease.
func (c *cluster) awaitLeader(from int, timeout time.Duration) (*replica, time.Time, int) {
	c.t.Helper()
	var leader *replica
	_, at, next := c.leases.awaitHolder(c.t, from, timeout, func(h string) bool {
		leader = c.owner(h)
		return leader != nil
	})
	return leader, at, next
}

// bump sets data["v"] of every ConfigMap to the next version.
func (c *cluster) bump() {
	c.t.Helper()
	c.version++
	patch := []byte(`{"data":{"v":"` + strconv.Itoa(c.version) + `"}}`)
	for i := range c.objects {
		if _, err := c.admin.CoreV1().ConfigMaps(c.ns).Patch(context.Background(), cmName(i),
			"application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			c.t.Fatal(err)
		}
	}
}

// awaitReconciled waits until every ConfigMap carries the current version
// in its reconciled annotation.
func (c *cluster) awaitReconciled(timeout time.Duration) {
	c.t.Helper()
	want := strconv.Itoa(c.version)
	c.awaitAll(timeout, "reconciled to v"+want, func(cm *corev1.ConfigMap) bool {
		return cm.Annotations["e2e.rein.dev/reconciled"] == want
	})
}

// awaitAll waits until done holds for all of the cluster's ConfigMaps.
func (c *cluster) awaitAll(timeout time.Duration, what string, done func(*corev1.ConfigMap) bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list, err := c.admin.CoreV1().ConfigMaps(c.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			c.t.Fatal(err)
		}
		behind := 0
		for i := range list.Items {
			if !done(&list.Items[i]) {
				behind++
			}
		}
		if behind == 0 && len(list.Items) == c.objects {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d of %d ConfigMaps not %s after %v", behind, len(list.Items), what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createConfigMaps creates cm-0000… with data v=1, 16 at a time.
func createConfigMaps(t testing.TB, cs kubernetes.Interface, ns string, n int) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, 16)
	)
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName(i)}, Data: map[string]string{"v": "1"}}
				if _, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func cmName(i int) string { return fmt.Sprintf("cm-%04d", i) }

// writeSpan is the span of one process's successful writes.
type writeSpan struct {
	writer      string
	first, last time.Time
	writes      int
}

// checkNoOverlappingWriters reads the audit log and fails the test when the
// successful ConfigMap writes of two processes overlap in time: each
// process's writes, from the first's arrival to the last's completion, must
// lie wholly before or after every other's.
func (c *cluster) checkNoOverlappingWriters() []writeSpan {
	c.t.Helper()
	spans := map[string]*writeSpan{}
	c.scanAudit(func(ev *audit.Event) {
		if ev.ObjectRef.Resource != "configmaps" || !strings.HasPrefix(ev.UserAgent, "rein-e2e/") || ev.ResponseStatus.Code >= 300 ||
			(ev.Verb != "patch" && ev.Verb != "update" && ev.Verb != "create" && ev.Verb != "delete") {
			return
		}
		s := spans[ev.UserAgent]
		if s == nil {
			s = &writeSpan{writer: ev.UserAgent, first: ev.RequestReceived, last: ev.StageTimestamp}
			spans[ev.UserAgent] = s
		}
		if ev.RequestReceived.Before(s.first) {
			s.first = ev.RequestReceived
		}
		if ev.StageTimestamp.After(s.last) {
			s.last = ev.StageTimestamp
		}
		s.writes++
	})
	var list []writeSpan
	for _, s := range spans {
		list = append(list, *s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].first.Before(list[j].first) })
	for i := 1; i < len(list); i++ {
		if list[i].first.Before(list[i-1].last) {
			c.t.Errorf("writers overlap: %s wrote %s–%s, %s from %s", list[i-1].writer,
				list[i-1].first.Format("15:04:05.000000"), list[i-1].last.Format("15:04:05.000000"),
				list[i].writer, list[i].first.Format("15:04:05.000000"))
		}
	}
	for _, s := range list {
		c.t.Logf("writer %s: %d writes %s–%s", s.writer, s.writes, s.first.Format("15:04:05.000"), s.last.Format("15:04:05.000"))
	}
	return list
}

// proxy stands between one replica and the apiserver: the test cuts its
// path (netfault.Proxy.Cut) or black-holes it (Hold, then Release).
type proxy struct {
	*netfault.Proxy
}

func newProxy(t testing.TB, apiserverURL string) *proxy {
	p, err := netfault.Start(apiserverURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &proxy{p}
}

// setCut cuts (closes every connection, refuses new ones) or restores.
func (p *proxy) setCut(cut bool) {
	if cut {
		p.Cut()
	} else {
		p.Restore()
	}
}

// kubeconfig writes a copy of the user's kubeconfig that reaches the
// apiserver through the proxy.
func (p *proxy) kubeconfig(t testing.TB, userKubeconfig string) string {
	cfg, err := clientcmd.LoadFromFile(userKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cluster := range cfg.Clusters {
		cluster.Server = "https://" + p.Addr()
	}
	path := filepath.Join(t.TempDir(), "proxied.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// follow calls handle, from one goroutine, with every event of a watch
// from resourceVersion rv (resumed when it breaks) until the test ends.
func follow(t testing.TB, rv string, watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error), handle func(watch.Event)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := toolswatch.NewRetryWatcherWithContext(ctx, rv, &cache.ListWatch{WatchFuncWithContext: watchFn})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			handle(ev)
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
}
