package fake_test

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/pkg/generic"
)

// TestUpdateOnChange: a handler's change of the object it was given is
// written, once; an unchanged object and a failed handler write nothing;
// the next handler sees the written object.
func TestUpdateOnChange(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "w"}, Spec: testapi.WidgetSpec{Size: 1}})
	widgets := widgetsOf(env)
	var fail bool
	var seenByNext string
	widgets.OnChange(ctx, "label", generic.UpdateOnChange(widgets.Update, func(ctx context.Context, key string, w *testapi.Widget) (*testapi.Widget, error) {
		if w == nil {
			return w, nil
		}
		if w.Labels == nil {
			w.Labels = map[string]string{}
		}
		w.Labels["size"] = map[int]string{1: "small", 2: "medium"}[w.Spec.Size]
		if fail {
			return w, errors.New("refused")
		}
		return w, nil
	}))
	widgets.OnChange(ctx, "next", func(ctx context.Context, key string, w *testapi.Widget) (*testapi.Widget, error) {
		if w != nil {
			seenByNext = w.ResourceVersion
		}
		return w, nil
	})
	reconcile := func() error { return env.Reconcile(ctx, widgets.GroupVersionKind(), "ns/w") }
	get := func() *testapi.Widget {
		t.Helper()
		w, err := widgets.Get(ctx, "ns", "w", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}

	before := get().ResourceVersion
	if err := reconcile(); err != nil {
		t.Fatal(err)
	}
	w := get()
	if w.Labels["size"] != "small" || w.ResourceVersion == before {
		t.Fatalf("after the first run: labels %v, resourceVersion %s (was %s): want the label written", w.Labels, w.ResourceVersion, before)
	}
	if seenByNext != w.ResourceVersion {
		t.Errorf("the next handler saw version %s, want the written %s", seenByNext, w.ResourceVersion)
	}
	if err := reconcile(); err != nil {
		t.Fatal(err)
	}
	if again := get(); again.ResourceVersion != w.ResourceVersion {
		t.Errorf("nothing changed but the object was written (%s → %s)", w.ResourceVersion, again.ResourceVersion)
	}

	w.Spec.Size, fail = 2, true
	if _, err := widgets.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := reconcile(); err == nil {
		t.Fatal("the handler's error was lost")
	}
	if got := get(); got.Labels["size"] != "small" {
		t.Errorf("a failed handler's change was written: labels %v", got.Labels)
	}
	fail = false
	if err := reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.Labels["size"] != "medium" {
		t.Errorf("labels %v, want size=medium", got.Labels)
	}
}
