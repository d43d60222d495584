package generic_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/generic"
)

// TestGeneratingHandler: a Widget of size n has n ConfigMaps; resizing
// prunes or adds; a failing handler keeps the last status and says why in
// a condition and an Event; deleting the Widget deletes its children.
func TestGeneratingHandler(t *testing.T) {
	ctx := t.Context()
	admin := testkit.Admin(t, env)
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "generating-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	f := newFactory(t, ns.Name)
	ws := generic.NewController[*testapi.Widget, *testapi.WidgetList](f, factorytest.Widgets)
	applier, err := apply.New(f)
	if err != nil {
		t.Fatal(err)
	}
	set, err := applier.Set("parts", []generic.Resource{{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true}})
	if err != nil {
		t.Fatal(err)
	}
	recorder := events.NewFakeRecorder(10)
	generic.RegisterGeneratingHandler(ctx, ws, set, "parts",
		func(w *testapi.Widget) *testapi.WidgetStatus { return &w.Status },
		func(ctx context.Context, w *testapi.Widget, status testapi.WidgetStatus) ([]runtime.Object, testapi.WidgetStatus, error) {
			if w.Spec.Size < 0 {
				status.ObservedSize = -1 // must not be written
				return nil, status, errors.New("size must not be negative")
			}
			var parts []runtime.Object
			for i := range w.Spec.Size {
				parts = append(parts, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", w.Name, i)}, Data: map[string]string{"i": fmt.Sprint(i)}})
			}
			status.ObservedSize = w.Spec.Size
			return parts, status, nil
		},
		generic.GeneratingOptions[testapi.WidgetStatus]{
			Conditions: func(s *testapi.WidgetStatus) *[]metav1.Condition { return &s.Conditions },
			Recorder:   recorder,
		})
	start(t, f)

	parts := func() []string {
		list, err := admin.CoreV1().ConfigMaps(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{apply.SetLabel: "parts"}).String()})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, cm := range list.Items {
			names = append(names, cm.Name)
		}
		return names
	}
	await := func(what string, done func(w *testapi.Widget) bool) *testapi.Widget {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			w, err := ws.Get(ctx, ns.Name, "w", metav1.GetOptions{})
			if err == nil && done(w) {
				return w
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: widget %+v (%v), parts %v", what, w, err, parts())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ready := func(size int) func(w *testapi.Widget) bool {
		return func(w *testapi.Widget) bool {
			return w.Status.ObservedSize == size && meta.IsStatusConditionTrue(w.Status.Conditions, "Generated") && len(parts()) == size
		}
	}

	if _, err := ws.Create(ctx, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: ns.Name}, Spec: testapi.WidgetSpec{Size: 3}}); err != nil {
		t.Fatal(err)
	}
	// The OnRemove half holds the deletion with a finalizer.
	w := await("three parts and the finalizer", func(w *testapi.Widget) bool { return ready(3)(w) && len(w.Finalizers) == 1 })

	w.Spec.Size = 1
	if _, err := ws.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	w = await("one part", ready(1))

	// A failing handler: the last good status stays, the condition says why.
	w.Spec.Size = -1
	if _, err := ws.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	w = await("the failure in the condition", func(w *testapi.Widget) bool {
		c := meta.FindStatusCondition(w.Status.Conditions, "Generated")
		return c != nil && c.Status == metav1.ConditionFalse
	})
	c := meta.FindStatusCondition(w.Status.Conditions, "Generated")
	if w.Status.ObservedSize != 1 || c.Reason != "GenerateFailed" || !strings.Contains(c.Message, "size must not be negative") || len(parts()) != 1 {
		t.Fatalf("after a failure: status %+v, parts %v; want the last good status (size 1) and the error in the condition", w.Status, parts())
	}
	select {
	case ev := <-recorder.Events:
		if !strings.Contains(ev, "Warning GenerateFailed size must not be negative") {
			t.Fatalf("event %q", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Warning event for the failure")
	}

	// Deleting the owner deletes its children, then the owner goes.
	if err := ws.DeleteByName(ctx, ns.Name, "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := ws.Get(ctx, ns.Name, "w", metav1.GetOptions{})
		if apierrors.IsNotFound(err) && len(parts()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after deleting the owner: %v, parts %v", err, parts())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
