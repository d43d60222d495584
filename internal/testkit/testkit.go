package testkit

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/pkg/testenv"
)

// Eventually polls cond every interval until it holds, failing the test
// once timeout has passed. It observes state that signals nothing (a queue's
// length, what a fake clock's step set off, an apiserver's objects); it does
// not order events.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// Receive waits for a value on ch, failing the test after timeout.
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// SyncBuffer is a bytes.Buffer that goroutines may write to while the test
// reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LazyEnv is a control plane shared by a package's tests, started by the
// first test that needs it, so that the unit tests run alone do not wait for
// it. The zero value is not usable: declare it with its Options.
type LazyEnv struct {
	Options testenv.Options

	once sync.Once
	env  *testenv.Env
	err  error
}

// Get returns the control plane, starting it on the first call; it skips
// the test under -short and fails it when the control plane does not start.
func (l *LazyEnv) Get(t testing.TB) *testenv.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a control plane (etcd + kube-apiserver)")
	}
	l.once.Do(func() { l.env, l.err = testenv.Start(l.Options) })
	if l.err != nil {
		t.Fatal(l.err)
	}
	return l.env
}

// Main runs the tests and then stops the control plane if one started,
// with testenv.Finish: the result is the tests' own, a stop that had to
// force things down is a warning; TestMain passes it to os.Exit.
func (l *LazyEnv) Main(m interface{ Run() int }) int {
	code := m.Run()
	if l.env != nil {
		code = testenv.Finish(l.env, code)
	}
	return code
}

// NewNamespace creates a namespace of the test's own, named from prefix,
// so that tests sharing the control plane do not see each other's objects;
// it is deleted when the test ends.
func NewNamespace(t testing.TB, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// Admin is a clientset of the control plane's administrator.
func Admin(t testing.TB, env *testenv.Env) kubernetes.Interface {
	t.Helper()
	cs, err := env.Admin().Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Logger logs at debug level into a buffer, which the test's log shows,
// headed by what, when the test fails.
func Logger(t testing.TB, what string) (*logrus.Entry, *SyncBuffer) {
	buf := &SyncBuffer{}
	l := logrus.New()
	l.SetOutput(buf)
	l.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", what, buf.String())
		}
	})
	return logrus.NewEntry(l), buf
}

// ReleaseAtEnd releases term (a pkg/leader Term) when the test ends, and
// fails the test when its goroutines do not stop within 10s.
func ReleaseAtEnd(t testing.TB, term interface {
	Release(context.Context) error
	Done() <-chan struct{}
}) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = term.Release(ctx)
		select {
		case <-term.Done():
		case <-ctx.Done():
			t.Error("term goroutines did not stop")
		}
	})
}
