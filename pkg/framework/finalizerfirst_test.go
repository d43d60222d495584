package framework_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/pkg/framework"
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
	f := newFactory(t, ns, framework.Options{Workers: 8})
	c := controller(t, f, widgets)
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
	}
	if bare > 0 {
		t.Errorf("the change handler ran %d times on a live object that did not carry %s yet", bare, finalizer)
	}
	if created == 0 {
		t.Error("no external create at all: the test exercised nothing")
	}
}
