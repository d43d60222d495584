package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// TestIgnoreStatus: a handler registered with IgnoreStatus does not run
// again on its own status write, while another handler of the same
// controller does; it runs on a spec change and on an explicit Enqueue.
func TestIgnoreStatus(t *testing.T) {
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{Registerer: reg})
	c := controller(t, f, factorytest.Widgets)
	statusRuns, allRuns := make(chan string, 20), make(chan string, 20)
	c.AddHandler(t.Context(), "status", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		w, ok := obj.(*testapi.Widget)
		if !ok {
			return nil, nil
		}
		statusRuns <- w.ResourceVersion
		if w.Status.ObservedSize == w.Spec.Size {
			return w, nil
		}
		w.Status.ObservedSize = w.Spec.Size
		out := &testapi.Widget{}
		if err := c.Client().Update(ctx, w.Namespace, w.Name, "status", w, metav1.UpdateOptions{}, out); err != nil {
			return nil, err
		}
		return out, nil
	}, engine.IgnoreStatus())
	c.AddHandler(t.Context(), "all", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if w, ok := obj.(*testapi.Widget); ok {
			allRuns <- w.ResourceVersion
		}
		return nil, nil
	})
	run(t, f)

	// The chain hands "all" the object "status" returned, so each chain
	// run reports one version to allRuns, whether or not "status" ran.
	created := &testapi.Widget{}
	if err := c.Client().Create(t.Context(), ns, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: "w"}, Spec: testapi.WidgetSpec{Size: 7}}, metav1.CreateOptions{}, created); err != nil {
		t.Fatal(err)
	}
	if rv := receive(t, statusRuns, 10*time.Second, "the create"); rv != created.ResourceVersion {
		t.Fatalf("status handler first ran on %s, want the created %s", rv, created.ResourceVersion)
	}
	written := receive(t, allRuns, 10*time.Second, "the create's chain")
	// The status write's own event: "all" runs again, "status" does not.
	if rv := receive(t, allRuns, 10*time.Second, "the status write's event"); rv != written {
		t.Fatalf("the second chain run saw %s, want the status write %s", rv, written)
	}
	select {
	case rv := <-statusRuns:
		t.Fatalf("the status handler ran again on %s, after its own status write", rv)
	default:
	}
	if n := metricValue(t, reg, "rein_handler_executions_total", "status", "filtered"); n != 1 {
		t.Fatalf("filtered runs counted: %v, want 1", n)
	}

	// A spec change runs it.
	var w testapi.Widget
	if err := c.Client().Get(t.Context(), ns, "w", metav1.GetOptions{}, &w); err != nil {
		t.Fatal(err)
	}
	w.Spec.Size = 8
	updated := &testapi.Widget{}
	if err := c.Client().Update(t.Context(), ns, "w", "", &w, metav1.UpdateOptions{}, updated); err != nil {
		t.Fatal(err)
	}
	if rv := receive(t, statusRuns, 10*time.Second, "the spec change"); rv != updated.ResourceVersion {
		t.Fatalf("status handler ran on %s, want the spec change %s", rv, updated.ResourceVersion)
	}
	written = receive(t, allRuns, 10*time.Second, "the spec change's chain")
	if rv := receive(t, allRuns, 10*time.Second, "the second status write's event"); rv != written {
		t.Fatalf("the chain run after the second status write saw %s, want %s", rv, written)
	}

	// An explicit Enqueue runs it on the unchanged object.
	c.Enqueue(ns + "/w")
	if rv := receive(t, statusRuns, 10*time.Second, "the explicit enqueue"); rv != written {
		t.Fatalf("status handler ran on %s after Enqueue, want %s", rv, written)
	}
}
