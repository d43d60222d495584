package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// externalSystem stands for something outside the cluster (a hypervisor):
// what was created in it for which object, and what was cleaned up.
type externalSystem struct {
	mu      sync.Mutex
	created map[types.UID]string // uid -> name
	deleted map[types.UID]bool
	// bare counts change-handler runs on a live object that did not carry
	// the remove handler's finalizer yet.
	bare int
}

func newExternalSystem() *externalSystem {
	return &externalSystem{created: map[types.UID]string{}, deleted: map[types.UID]bool{}}
}

// leaks names the objects whose external thing was created and never
// cleaned up.
func (x *externalSystem) leaks() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for uid, name := range x.created {
		if !x.deleted[uid] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestFinalizersComeFirst is issue 26: a change handler registered BEFORE
// a remove handler creates something outside the cluster; objects are
// deleted 0-200 ms after they were created. Every external create must be
// cleaned up: the remove handler's finalizer is on the object before any
// change handler runs on it, whatever the registration order.
func TestFinalizersComeFirst(t *testing.T) {
	const (
		tries       = 250
		concurrency = 25
		// externalCall is how long the external create takes: the window
		// in which a deletion can overtake a finalizer added late.
		externalCall = 20 * time.Millisecond
	)
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{Workers: 8})
	c := controller(t, f, factorytest.Widgets)
	ctx := t.Context()
	x := newExternalSystem()
	const finalizer = "rein.dev/deprovision"

	// Registered first: the provisioning handler.
	c.AddHandler(ctx, "provision", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj == nil {
			return nil, nil
		}
		w := obj.(*testapi.Widget)
		if w.DeletionTimestamp != nil {
			return obj, nil // never create for an object on its way out
		}
		x.mu.Lock()
		if !slices.Contains(w.Finalizers, finalizer) {
			x.bare++
		}
		_, exists := x.created[w.UID]
		x.mu.Unlock()
		if exists {
			return obj, nil
		}
		select { // the external call
		case <-time.After(externalCall):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		x.mu.Lock()
		x.created[w.UID] = w.Name
		x.mu.Unlock()
		return obj, nil
	})
	// Registered second: the cleanup.
	if err := c.AddRemoveHandler(ctx, "deprovision", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		w := obj.(*testapi.Widget)
		x.mu.Lock()
		x.deleted[w.UID] = true
		x.mu.Unlock()
		return obj, nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, f)

	// Create and delete, tries in all, concurrency at a time; try i is
	// deleted i%201 ms after its create returned.
	errs := make(chan error, tries)
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := range tries {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := fmt.Sprintf("w-%03d", i)
			if err := c.Client().Create(ctx, ns, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}, &testapi.Widget{}); err != nil {
				errs <- err
				return
			}
			time.Sleep(time.Duration(i%201) * time.Millisecond) // the scenario's delay, not a wait for an event
			if err := c.Client().Delete(ctx, ns, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every object goes (their finalizers are released by the cleanup).
	eventually(t, 30*time.Second, "every widget to be gone", func() bool {
		var list testapi.WidgetList
		if err := c.Client().List(ctx, ns, metav1.ListOptions{}, &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Items) == 0
	})
	x.mu.Lock()
	created, bare := len(x.created), x.bare
	x.mu.Unlock()
	leaks := x.leaks()
	t.Logf("%d tries: %d external creates, %d leaked; %d change-handler runs on a live object without the finalizer", tries, created, len(leaks), bare)
	if len(leaks) > 0 {
		t.Errorf("%d external creates never cleaned up: %v", len(leaks), leaks)
		// Tell a late cleanup from a lost one: does the remove handler
		// still run for them once the objects are gone?
		waited := time.Now()
		for len(x.leaks()) > 0 && time.Since(waited) < 10*time.Second {
			time.Sleep(50 * time.Millisecond) // a diagnosis of a failure, not a synchronisation
		}
		t.Logf("%d of them still not cleaned up %v after the objects were gone", len(x.leaks()), time.Since(waited).Round(time.Millisecond))
	}
	if bare > 0 {
		t.Errorf("the change handler ran %d times on a live object that did not carry %s yet", bare, finalizer)
	}
	if created == 0 {
		t.Error("no external create at all: the test exercised nothing")
	}
}

// TestFinalizersFirstEdges drives a manual controller whose store holds a
// stale copy of each object, so that the finalizer patch meets, for sure,
// each case it must handle: an object gone (the chain runs as for a
// deleted object), a newer version (a conflict: the chain runs on the
// newer object, with the finalizers), an object being deleted that no
// finalizer of ours holds (nothing is added; change handlers see it
// deleting; no remove handler runs), a refused write (no handler runs;
// the failure is the remove handlers'), and a remove handler whose
// context ended (it adds nothing).
func TestFinalizersFirstEdges(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	client, err := engine.OpsOf(f).Clients().ForResource(factorytest.Widgets)
	if err != nil {
		t.Fatal(err)
	}
	store := cache.NewSharedIndexInformer(&cache.ListWatch{}, &testapi.Widget{}, 0, cache.Indexers{}) // never runs: the test fills it
	c, err := engine.NewManualController(engine.ManualConfig{
		Resource: factorytest.Widgets, Client: client, Informer: store,
		NewObject: func() (runtime.Object, error) { return &testapi.Widget{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	type seen struct {
		present    bool
		deleting   bool
		finalizers []string
		labels     map[string]string
	}
	var changes []seen
	removed := 0
	c.AddHandler(ctx, "provision", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj == nil {
			changes = append(changes, seen{})
			return nil, nil
		}
		w := obj.(*testapi.Widget)
		changes = append(changes, seen{present: true, deleting: w.DeletionTimestamp != nil, finalizers: slices.Clone(w.Finalizers), labels: w.Labels})
		return obj, nil
	})
	for _, name := range []string{"deprovision", "example.com/release-ip"} {
		if err := c.AddRemoveHandler(ctx, name, func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
			removed++
			return obj, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	ended, cancel := context.WithCancel(ctx)
	if err := c.AddRemoveHandler(ended, "ended", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		removed++
		return obj, nil
	}); err != nil {
		t.Fatal(err)
	}
	cancel()
	ours := []string{"rein.dev/deprovision", "example.com/release-ip"}

	create := func(name string, finalizers ...string) *testapi.Widget {
		t.Helper()
		w := &testapi.Widget{}
		if err := client.Create(ctx, ns, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: finalizers}}, metav1.CreateOptions{}, w); err != nil {
			t.Fatal(err)
		}
		if err := store.GetStore().Add(w.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		return w
	}
	get := func(name string) (*testapi.Widget, error) {
		w := &testapi.Widget{}
		return w, client.Get(ctx, ns, name, metav1.GetOptions{}, w)
	}
	process := func(name string) error {
		t.Helper()
		changes = nil
		_, err := c.Process(ctx, ns+"/"+name)
		return err
	}

	// Fresh: one patch, the chain runs on its answer.
	create("fresh")
	if err := process("fresh"); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !slices.Equal(changes[0].finalizers, ours) {
		t.Fatalf("fresh: change handler saw %+v, want %v", changes, ours)
	}
	if w, err := get("fresh"); err != nil || !slices.Equal(w.Finalizers, ours) {
		t.Fatalf("fresh: stored %v, %v; want finalizers %v", w.Finalizers, err, ours)
	}

	// Gone: the patch finds nothing; the chain runs with nil.
	create("gone")
	if err := client.Delete(ctx, ns, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := process("gone"); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].present {
		t.Fatalf("gone: change handler saw %+v, want nil", changes)
	}

	// Newer on the server: conflict, then the newer object, with ours.
	create("newer")
	if err := client.Patch(ctx, ns, "newer", types.MergePatchType, []byte(`{"metadata":{"labels":{"v":"2"}}}`), metav1.PatchOptions{}, &testapi.Widget{}); err != nil {
		t.Fatal(err)
	}
	if err := process("newer"); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].labels["v"] != "2" || !slices.Equal(changes[0].finalizers, ours) {
		t.Fatalf("newer: change handler saw %+v, want label v=2 and finalizers %v", changes, ours)
	}

	// Deleting, held by someone else's finalizer only.
	create("deleting", "example.com/hold")
	if err := client.Delete(ctx, ns, "deleting", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := process("deleting"); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !changes[0].deleting || !slices.Equal(changes[0].finalizers, []string{"example.com/hold"}) || removed != 0 {
		t.Fatalf("deleting: change handler saw %+v, %d remove handler runs; want it deleting with only example.com/hold, and none", changes, removed)
	}
	if err := client.Patch(ctx, ns, "deleting", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}, &testapi.Widget{}); err != nil {
		t.Fatal(err)
	}

	// Refused: no handler runs; the error is the remove handlers'.
	create("refused")
	engine.OpsOf(f).GuardWrites(holdFunc(func() (time.Time, error) { return time.Time{}, errors.New("fenced") }))
	err = process("refused")
	engine.OpsOf(f).GuardWrites(nil)
	var herr *engine.HandlerError
	if !errors.As(err, &herr) || herr.Handler != "deprovision,example.com/release-ip" || len(changes) != 0 {
		t.Fatalf("refused: %v, change handler saw %+v; want a HandlerError of deprovision,example.com/release-ip and no handler run", err, changes)
	}
	if w, err := get("refused"); err != nil || len(w.Finalizers) != 0 {
		t.Fatalf("refused: stored %v, %v; want no finalizer", w.Finalizers, err)
	}
}
