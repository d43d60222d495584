package fake_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/pkg/apply"
	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/generic/fake"
)

// generatingParts registers handler as the generating handler "parts"
// (its children: ConfigMaps of the apply set "parts") of the Widgets of
// a new Env that holds the Widget ns/w of size, and returns the Env and
// its Widgets.
func generatingParts(t *testing.T, size int, handler generic.GeneratingHandler[*testapi.Widget, testapi.WidgetStatus], opts generic.GeneratingOptions[testapi.WidgetStatus]) (*fake.Env, generic.Controller[*testapi.Widget, *testapi.WidgetList]) {
	t.Helper()
	env := newEnv(t, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "w"}, Spec: testapi.WidgetSpec{Size: size}})
	widgets := widgetsOf(env)
	applier, err := apply.New(env.Factory())
	if err != nil {
		t.Fatal(err)
	}
	set, err := applier.Set("parts", []generic.Resource{corectrl.ConfigMapResource})
	if err != nil {
		t.Fatal(err)
	}
	generic.RegisterGeneratingHandler(t.Context(), widgets, set, "parts",
		func(w *testapi.Widget) *testapi.WidgetStatus { return &w.Status }, handler, opts)
	return env, widgets
}

// TestGeneratingHandler runs a generating handler on the fake store, as a
// user's unit test does: children are created with the set's labels and
// an owner reference, left alone when unchanged (no write: their
// resourceVersions stay), updated, pruned, a hand edit is reverted, and
// they go with the owner.
func TestGeneratingHandler(t *testing.T) {
	ctx := t.Context()
	env, widgets := generatingParts(t, 2,
		func(ctx context.Context, w *testapi.Widget, status testapi.WidgetStatus) ([]runtime.Object, testapi.WidgetStatus, error) {
			var parts []runtime.Object
			for i := range w.Spec.Size {
				parts = append(parts, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", w.Name, i)},
					Data: map[string]string{"i": fmt.Sprint(i), "of": fmt.Sprint(w.Spec.Size)}})
			}
			status.ObservedSize = w.Spec.Size
			return parts, status, nil
		},
		generic.GeneratingOptions[testapi.WidgetStatus]{})
	cms := configMapsOf(env)
	reconcile := func() {
		t.Helper()
		if err := env.Reconcile(ctx, widgets.GroupVersionKind(), "ns/w"); err != nil {
			t.Fatal(err)
		}
	}
	children := func() map[string]*corev1.ConfigMap {
		t.Helper()
		list, err := cms.List(ctx, "ns", metav1.ListOptions{LabelSelector: apply.SetLabel + "=parts"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*corev1.ConfigMap{}
		for i := range list.Items {
			out[list.Items[i].Name] = &list.Items[i]
		}
		return out
	}

	reconcile()
	got := children()
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, []string{"w-0", "w-1"}) {
		t.Fatalf("children %v, want w-0 w-1", names)
	}
	w, err := widgets.Get(ctx, "ns", "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Status.ObservedSize != 2 {
		t.Errorf("status.observedSize %d, want 2", w.Status.ObservedSize)
	}
	c := got["w-0"]
	if refs := c.OwnerReferences; len(refs) != 1 || refs[0].UID != w.UID || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("owner references %+v, want the widget as controller", refs)
	}
	if c.Labels[apply.OwnerLabel] != string(w.UID) || c.Data["of"] != "2" {
		t.Errorf("child w-0: labels %v data %v", c.Labels, c.Data)
	}

	// Unchanged: nothing written.
	before := map[string]string{}
	for name, c := range got {
		before[name] = c.ResourceVersion
	}
	reconcile()
	for name, c := range children() {
		if c.ResourceVersion != before[name] {
			t.Errorf("%s was written (resourceVersion %s → %s) though nothing changed", name, before[name], c.ResourceVersion)
		}
	}

	// A hand edit is reverted, keeping a label someone else set.
	edited := got["w-1"].DeepCopy()
	edited.Data["of"] = "99"
	edited.Labels["team"] = "blue"
	if _, err := cms.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	reconcile()
	if c := children()["w-1"]; c.Data["of"] != "2" || c.Labels["team"] != "blue" {
		t.Errorf("after a hand edit: data %v labels %v, want of=2 and team=blue kept", c.Data, c.Labels)
	}

	// A hand delete is reverted too.
	if err := cms.DeleteByName(ctx, "ns", "w-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	reconcile()
	if _, ok := children()["w-0"]; !ok {
		t.Error("a child deleted by hand was not restored")
	}

	// Shrink: w-1 is pruned, w-0 updated.
	w.Spec.Size = 1
	if _, err := widgets.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	reconcile()
	got = children()
	if len(got) != 1 || got["w-0"] == nil || got["w-0"].Data["of"] != "1" {
		t.Fatalf("after shrinking to 1: %v", got)
	}

	// Deleting the owner deletes its children (OnRemove), then the owner.
	if w, err = widgets.Get(ctx, "ns", "w", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := widgets.Delete(ctx, w, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	reconcile()
	if got := children(); len(got) != 0 {
		t.Errorf("children left after the owner's deletion: %v", slices.Sorted(maps.Keys(got)))
	}
	if _, err := widgets.Get(ctx, "ns", "w", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the owner is still there (%v): its finalizer should have gone with its children", err)
	}
}

// TestGeneratingHandlerRequeue: a generating handler that polls (returns
// RequeueAfter) has succeeded: its children are applied and its status
// written, and the key is queued again after the delay; an error keeps
// the last status.
func TestGeneratingHandlerRequeue(t *testing.T) {
	ctx := t.Context()
	env, widgets := generatingParts(t, 1,
		func(ctx context.Context, w *testapi.Widget, status testapi.WidgetStatus) ([]runtime.Object, testapi.WidgetStatus, error) {
			status.ObservedSize = w.Spec.Size
			if w.Spec.Size > 1 {
				return nil, status, errors.New("too big")
			}
			return []runtime.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w-part"}}}, status, generic.RequeueAfter(3 * time.Second)
		},
		generic.GeneratingOptions[testapi.WidgetStatus]{Conditions: func(s *testapi.WidgetStatus) *[]metav1.Condition { return &s.Conditions }})
	if err := env.Reconcile(ctx, widgets.GroupVersionKind(), "ns/w"); err != nil {
		t.Fatalf("a requeue is not a failure: %v", err)
	}
	if _, err := configMapsOf(env).Get(ctx, "ns", "w-part", metav1.GetOptions{}); err != nil {
		t.Errorf("the child of a polling handler was not applied: %v", err)
	}
	w, err := widgets.Get(ctx, "ns", "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Status.ObservedSize != 1 || len(w.Status.Conditions) != 1 || w.Status.Conditions[0].Status != metav1.ConditionTrue {
		t.Errorf("status %+v: want observedSize 1 and Generated=True", w.Status)
	}
	if got := env.Enqueued(); !slices.ContainsFunc(got, func(r fake.Request) bool { return r.Key == "ns/w" && r.After == 3*time.Second }) {
		t.Errorf("queued %+v, want ns/w after 3s", got)
	}

	w.Spec.Size = 2
	if _, err := widgets.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := env.Reconcile(ctx, widgets.GroupVersionKind(), "ns/w"); err == nil || !strings.Contains(err.Error(), "too big") {
		t.Fatalf("Reconcile: %v, want the handler's error", err)
	}
	if w, err = widgets.Get(ctx, "ns", "w", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if w.Status.ObservedSize != 1 || w.Status.Conditions[0].Status != metav1.ConditionFalse || w.Status.Conditions[0].Reason != "GenerateFailed" {
		t.Errorf("after a failure: status %+v, want the last observedSize (1) kept and Generated=False/GenerateFailed", w.Status)
	}
}
