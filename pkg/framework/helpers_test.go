package framework_test

import (
	"context"
	"github.com/rein-k8s/rein/pkg/fence"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{CRDDirs: []string{"../../internal/testapi/crds"}}, &env))
}

var (
	configMaps = framework.Resource{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true}
	widgets    = framework.Resource{GVK: testapi.SchemeGroupVersion.WithKind("Widget"), Plural: "widgets", Namespaced: true}
	gadgets    = framework.Resource{GVK: testapi.SchemeGroupVersion.WithKind("Gadget"), Plural: "gadgets", Namespaced: true}
)

func newScheme(t testing.TB) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := testapi.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func adminClient(t testing.TB) kubernetes.Interface {
	cs, err := env.Admin().Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// newNamespace creates a namespace of the test's own, so that tests sharing
// the control plane do not see each other's objects.
func newNamespace(t testing.TB) string {
	cs := adminClient(t)
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "fw-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// fastRetries keeps backoff short so retry tests take milliseconds.
var fastRetries = framework.RateLimit{BaseDelay: 10 * time.Millisecond, MaxDelay: time.Second, QPS: 1000, Burst: 1000}

func newFactory(t testing.TB, namespace string, opts framework.Options) *framework.Factory {
	opts.Namespace = namespace
	if opts.RateLimit == (framework.RateLimit{}) {
		opts.RateLimit = fastRetries
	}
	f, err := framework.NewFactory(env.Config(), newScheme(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// run starts caches and workers of f until the test ends.
func run(t testing.TB, f *framework.Factory) {
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.StartCaches(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := f.WaitForCacheSync(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	w, err := f.StartWorkers(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := w.Wait(10 * time.Second); err != nil {
			t.Error(err)
		}
		f.Caches().Wait()
	})
}

func controller(t testing.TB, f *framework.Factory, res framework.Resource) *framework.Controller {
	c, err := f.Controller(res)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// receive waits for a value on ch, failing the test after timeout.
func receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// eventually polls cond (state outside the test's reach, such as a queue
// length) until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
