package engine_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{
		CRDDirs: []string{"../../internal/testapi/crds"},
		// Server-side sharded list and watch (alpha in v1.37), for the
		// partitioned caches; requests without a shard selector are
		// served as without the gate.
		APIServerFlags: map[string][]string{"feature-gates": {"ShardedListAndWatch=true"}},
	}, &env))
}

func newScheme(t testing.TB) *runtime.Scheme {
	return factorytest.Scheme(t, clientgoscheme.AddToScheme, testapi.AddToScheme)
}

func adminClient(t testing.TB) kubernetes.Interface { return testkit.Admin(t, env) }

// newNamespace creates a namespace of the test's own, so that tests sharing
// the control plane do not see each other's objects.
func newNamespace(t testing.TB) string { return testkit.NewNamespace(t, adminClient(t), "fw-") }

// fastRetries keeps backoff short so retry tests take milliseconds.
var fastRetries = engine.RateLimit{BaseDelay: 10 * time.Millisecond, MaxDelay: time.Second, QPS: 1000, Burst: 1000}

func newFactory(t testing.TB, namespace string, opts engine.Options) *engine.Factory {
	opts.Namespace = namespace
	if opts.RateLimit == (engine.RateLimit{}) {
		opts.RateLimit = fastRetries
	}
	f, err := engine.NewFactory(env.Config(), newScheme(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// run starts caches and workers of f until the test ends.
func run(t testing.TB, f *engine.Factory) { factorytest.Run(t, f) }

func controller(t testing.TB, f *engine.Factory, res engine.Resource) *engine.Controller {
	c, err := engine.OpsOf(f).Controller(res)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// receive waits for a value on ch, failing the test after timeout.
func receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	return testkit.Receive(t, ch, timeout, what)
}

// eventually polls cond (state outside the test's reach, such as a queue
// length) until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, timeout, 10*time.Millisecond, what, cond)
}

func createConfigMap(t testing.TB, ns, name string, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm, err := adminClient(t).CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// holdFunc is a fence.Hold with no token whose Deadline is the function.
type holdFunc func() (time.Time, error)

func (h holdFunc) Token() fence.Token           { return fence.Token{} }
func (h holdFunc) Deadline() (time.Time, error) { return h() }
