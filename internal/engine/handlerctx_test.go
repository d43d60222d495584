package engine_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// blockedHandler registers a handler on ConfigMaps that calls a server
// which never answers, with the handler's context, and reports when the
// call has begun and when it returned.
func blockedHandler(t *testing.T, f *engine.Factory) (started <-chan struct{}, returned <-chan time.Time) {
	t.Helper()
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(never.Close)
	startedCh, returnedCh := make(chan struct{}, 1), make(chan time.Time, 1)
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "external", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, never.URL, nil)
		if err != nil {
			return nil, err
		}
		startedCh <- struct{}{}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		returnedCh <- time.Now()
		return nil, engine.ErrSkip
	})
	return startedCh, returnedCh
}

func startWithTerm(t *testing.T, f *engine.Factory, term context.Context) *engine.Workers {
	t.Helper()
	if err := engine.OpsOf(f).StartCaches(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := engine.OpsOf(f).WaitForCacheSync(t.Context()); err != nil {
		t.Fatal(err)
	}
	w, err := engine.OpsOf(f).StartWorkers(term)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestHandlerContextEndsWithTheTerm: a handler blocked in an external call
// returns as soon as the term ends (a lost lease), not when the call would.
func TestHandlerContextEndsWithTheTerm(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	started, returned := blockedHandler(t, f)
	term, endTerm := context.WithCancel(t.Context())
	w := startWithTerm(t, f, term)
	if _, err := adminClient(t).CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	receive(t, started, 30*time.Second, "the handler's call")
	ended := time.Now()
	endTerm()
	back := receive(t, returned, 5*time.Second, "the handler's return")
	if d := back.Sub(ended); d > 100*time.Millisecond {
		t.Errorf("the handler returned %v after the term ended, want within 100ms", d)
	} else {
		t.Logf("the handler returned %v after the term ended", d)
	}
	if err := w.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestStopKeepsHandlerContextUntilTheTermEnds: a graceful stop (Stop) takes
// no new keys but lets a running handler's call go on; ending the term
// after the drain grace cuts it off.
func TestStopKeepsHandlerContextUntilTheTermEnds(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	started, returned := blockedHandler(t, f)
	term, endTerm := context.WithCancel(t.Context())
	defer endTerm()
	w := startWithTerm(t, f, term)
	if _, err := adminClient(t).CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	receive(t, started, 30*time.Second, "the handler's call")
	w.Stop()
	// The drain grace passes with the handler still in its call.
	if err := w.Wait(200 * time.Millisecond); err == nil {
		t.Fatal("Wait returned nil while the handler was still in its call: Stop must not end the handler's context")
	}
	select {
	case <-returned:
		t.Fatal("the handler returned on Stop: its context must live until the term ends")
	default:
	}
	endTerm()
	receive(t, returned, 5*time.Second, "the handler's return after the term ended")
	if err := w.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerLoggerNamesControllerHandlerAndKey: Logger(ctx) in a handler
// logs with the controller, handler and key fields.
func TestHandlerLoggerNamesControllerHandlerAndKey(t *testing.T) {
	ns := newNamespace(t)
	log, hook := test.NewNullLogger()
	f := newFactory(t, ns, engine.Options{Logger: logrus.NewEntry(log)})
	logged := make(chan struct{}, 1)
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "greeter", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj != nil {
			engine.Logger(ctx).Info("hello")
			select {
			case logged <- struct{}{}:
			default:
			}
		}
		return nil, nil
	})
	run(t, f)
	if _, err := adminClient(t).CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "greet"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	receive(t, logged, 30*time.Second, "the handler's log line")
	for _, e := range hook.AllEntries() {
		if e.Message == "hello" {
			if e.Data["handler"] != "greeter" || e.Data["key"] != ns+"/greet" || e.Data["controller"] == nil {
				t.Fatalf("fields %v, want controller, handler=greeter and key=%s/greet", e.Data, ns)
			}
			return
		}
	}
	t.Fatal("no log line from the handler")
}
