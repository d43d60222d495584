package generic_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/generic"
)

// TestRegisterStatusHandler: the status is written when the handler changes
// it, and an unchanged status costs no write.
func TestRegisterStatusHandler(t *testing.T) {
	ctx := t.Context()
	f := newFactory(t, "default")
	ws := generic.NewController[*testapi.Widget, *testapi.WidgetList](f, factorytest.Widgets)
	calls := make(chan int, 16)
	generic.RegisterStatusHandler(ctx, ws, "observe",
		func(w *testapi.Widget) *testapi.WidgetStatus { return &w.Status },
		func(ctx context.Context, w *testapi.Widget, status testapi.WidgetStatus) (testapi.WidgetStatus, error) {
			status.ObservedSize = w.Spec.Size
			calls <- w.Spec.Size
			return status, nil
		})
	start(t, f)
	created, err := ws.Create(ctx, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{GenerateName: "status-", Namespace: "default"}, Spec: testapi.WidgetSpec{Size: 3}})
	if err != nil {
		t.Fatal(err)
	}
	var written *testapi.Widget
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, err := ws.Get(ctx, "default", created.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if w.Status.ObservedSize == 3 {
			written = w
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status not written: %+v", w.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if written.ResourceVersion == created.ResourceVersion {
		t.Fatal("status written without a new resourceVersion")
	}
	// Drain the calls so far, then reconcile again with nothing to change.
	for len(calls) > 0 {
		<-calls
	}
	ws.Enqueue("default", created.Name)
	receive(t, calls, "the handler on an unchanged object")
	// One key is processed at a time: once the next run has begun, the
	// first has finished, write or no write.
	ws.Enqueue("default", created.Name)
	receive(t, calls, "the handler once more")
	again, err := ws.Get(ctx, "default", created.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != written.ResourceVersion {
		t.Fatalf("unchanged status was written again: resourceVersion %s → %s", written.ResourceVersion, again.ResourceVersion)
	}
}
