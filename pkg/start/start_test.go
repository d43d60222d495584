package start_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/start"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv(replicaProcessEnv) != "" {
		replicaMain() // never returns: start.Run ends the process
	}
	// ShardedListAndWatch (alpha) for the partitioned caches; requests
	// without a shard selector are served as without it.
	os.Exit(testenv.Main(m, testenv.Options{APIServerFlags: map[string][]string{"feature-gates": {"ShardedListAndWatch=true"}}}, &env))
}

// testLease names the Lease of the tests' one group.
const testLease = "start-test"

func testOptions(t *testing.T, ns string) start.Options {
	o := start.NewOptions()
	o.Config = env.Config()
	o.LeaseNamespace = ns
	o.IdentityBase = "tester"
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 2*time.Second, 1500*time.Millisecond, 300*time.Millisecond
	o.MetricsBindAddress = "127.0.0.1:0"
	o.HealthProbeBindAddress = "127.0.0.1:0"
	return o
}

func TestOptionsErrorsNameTheFlag(t *testing.T) {
	o := testOptions(t, "default")
	o.RenewDeadline = 3 * time.Second // above the lease duration
	_, err := start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	if err == nil || !strings.Contains(err.Error(), "--leader-elect-lease-duration") {
		t.Fatalf("renew deadline above lease duration: %v", err)
	}
	o = testOptions(t, "")
	_, err = start.New(o, start.Group{Factories: []start.Starter{newFactory(t, "default")}})
	// An empty namespace is defaulted ("default" here); an empty name is not.
	if err == nil || !strings.Contains(err.Error(), "--leader-elect-resource-name") || strings.Contains(err.Error(), "--leader-elect-resource-namespace") {
		t.Fatalf("no lease name nor namespace: %v", err)
	}
	o = testOptions(t, "default")
	_, err = start.New(o)
	if err == nil {
		t.Fatal("New with no factory succeeded")
	}
	// Without an election, negative timings are still mistakes, all named.
	o = testOptions(t, "default")
	o.LeaderElect, o.LeaseDuration, o.RetryPeriod, o.DrainGrace = false, -time.Second, -time.Second, -time.Second
	_, err = start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	for _, flag := range []string{"--leader-elect-lease-duration", "--leader-elect-retry-period", "--drain-grace"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("negative %s with --leader-elect=false: %v", flag, err)
		}
	}
}

func TestAddressInUseFailsAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	o := testOptions(t, "default")
	o.MetricsBindAddress = l.Addr().String()
	_, err = start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	if err == nil || !strings.Contains(err.Error(), "--metrics-bind-address") {
		t.Fatalf("metrics address in use: %v", err)
	}
}

func newFactory(t *testing.T, ns string) *framework.Factory {
	s := factorytest.Scheme(t, clientgoscheme.AddToScheme, testapi.AddToScheme)
	f, err := framework.NewFactory(env.Config(), s, framework.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newNamespace(t *testing.T, cs kubernetes.Interface) string {
	return testkit.NewNamespace(t, cs, "start-")
}

func get(t *testing.T, url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// run runs r until stop is called; done has what Run returned.
func run(r *start.Replica) (stop context.CancelFunc, done <-chan error) {
	ctx, stop := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- r.Run(ctx) }()
	return stop, ch
}

// runNew builds a replica of o and the groups and runs it.
func runNew(t *testing.T, o start.Options, groups ...start.Group) (r *start.Replica, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	r, err := start.New(o, groups...)
	if err != nil {
		t.Fatal(err)
	}
	stop, done = run(r)
	return r, stop, done
}

func holder(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	l, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, 20*time.Millisecond, what, cond)
}

// TestTwoElectionGroups runs one replica with two groups, each its own
// Lease and factory: both lead, both work, /readyz, /healthz and /metrics
// answer, and a stop releases both leases.
func TestTwoElectionGroups(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	handled := make(chan string, 8)
	hooked := make(chan string, 2)
	var groups []start.Group
	for _, name := range []string{"alpha", "beta"} {
		f := newFactory(t, ns)
		c, err := engine.OpsOf(f).Controller(factorytest.ConfigMaps)
		if err != nil {
			t.Fatal(err)
		}
		c.AddHandler(t.Context(), name, func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
			if obj != nil {
				// The handler's context carries its group's term token.
				if tok, ok := fence.TokenFrom(ctx); !ok || tok.Lease != name || tok.Namespace != ns {
					handled <- fmt.Sprintf("%s: token %v %v", name, tok, ok)
					return nil, nil
				}
				handled <- name + ":" + key
			}
			return nil, nil
		})
		groups = append(groups, start.Group{LeaseName: name, Factories: []start.Starter{f},
			OnLeader: []func(context.Context) error{func(ctx context.Context) error { hooked <- name; <-ctx.Done(); return nil }}})
	}
	o := testOptions(t, ns)
	o.Registry = nil
	r, stop, done := runNew(t, o, groups...)

	eventually(t, "readiness", func() bool { code, _ := get(t, "http://"+r.ProbeAddr()+"/readyz"); return code == 200 })
	eventually(t, "both leases", func() bool {
		return holder(t, admin, ns, "alpha") == r.Identity() && holder(t, admin, ns, "beta") == r.Identity()
	})
	if code, body := get(t, "http://"+r.ProbeAddr()+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d %s", code, body)
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case h := <-handled:
			got[h] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("handlers ran: %v", got)
		}
	}
	if !got["alpha:"+ns+"/x"] || !got["beta:"+ns+"/x"] {
		t.Fatalf("handlers ran: %v", got)
	}
	for range 2 {
		select {
		case <-hooked:
		case <-time.After(10 * time.Second):
			t.Fatal("OnLeader hooks did not run")
		}
	}
	_, metrics := get(t, "http://"+r.MetricsAddr()+"/metrics")
	if !strings.Contains(metrics, "go_goroutines") {
		t.Fatal("/metrics lacks the Go collector")
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if h := holder(t, admin, ns, "alpha") + holder(t, admin, ns, "beta"); h != "" {
		t.Fatalf("leases not released: holders %q", h)
	}
}

// TestReturnToStandby: a replica deposed by another writer goes back to
// standby with its caches and leads again once the other's lease expires.
func TestReturnToStandby(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	f := newFactory(t, ns)
	c, err := engine.OpsOf(f).Controller(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	c.AddHandler(t.Context(), "count", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		runs.Add(1)
		return nil, nil
	})
	o := testOptions(t, ns)
	o.ReturnToStandby = true
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{f}})
	eventually(t, "leading", func() bool { return holder(t, admin, ns, testLease) == r.Identity() })

	// Another writer takes the lease over.
	leases := admin.CoordinationV1().Leases(ns)
	eventually(t, "the intruder's write", func() bool {
		l, err := leases.Get(context.Background(), testLease, metav1.GetOptions{})
		if err != nil {
			return false
		}
		l.Spec.HolderIdentity = ptr.To("intruder")
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
		return err == nil
	})
	// The replica stays up and takes the lease back after it expires.
	eventually(t, "leading again", func() bool { return holder(t, admin, ns, testLease) == r.Identity() })
	select {
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "work in the second term", func() bool { return runs.Load() >= 1 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLostLeaseEndsTheReplica: without ReturnToStandby, a deposed replica's
// Run returns ErrLeaseLost.
func TestLostLeaseEndsTheReplica(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	o := testOptions(t, ns)
	r, _, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, ns)}})
	eventually(t, "leading", func() bool { return holder(t, admin, ns, testLease) == r.Identity() })
	if err := admin.CoordinationV1().Leases(ns).Delete(context.Background(), testLease, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, start.ErrLeaseLost) {
			t.Fatalf("Run: %v, want ErrLeaseLost", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not end after its lease was deleted")
	}
}

// TestNotReadyWhileCachesDoNotSync: a kind the apiserver does not serve
// keeps the replica unready (and not campaigning); a stop still ends it.
func TestNotReadyWhileCachesDoNotSync(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	f := newFactory(t, ns)
	if _, err := engine.OpsOf(f).Controller(factorytest.Gadgets); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t, ns)
	logs := &testkit.SyncBuffer{}
	logger := logrus.New()
	logger.SetOutput(logs)
	o.Logger = logrus.NewEntry(logger)
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{f}})
	// The replica says what it waits for, naming the kind.
	eventually(t, "the log line naming the kind", func() bool {
		out := logs.String()
		return strings.Contains(out, "waiting for caches") && strings.Contains(out, "gadgets.test.rein.dev")
	})
	if code, body := get(t, "http://"+r.ProbeAddr()+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not synced") {
		t.Fatalf("/readyz %d %q while caches do not sync", code, body)
	}
	if h := holder(t, admin, ns, testLease); h != "" {
		t.Fatalf("an unready replica campaigned: holder %q", h)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
