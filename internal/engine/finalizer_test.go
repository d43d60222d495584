package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

func TestFinalizerName(t *testing.T) {
	for name, want := range map[string]string{
		"cleanup":             "rein.dev/cleanup",
		"example.com/cleanup": "example.com/cleanup",
	} {
		got, err := engine.FinalizerName(name)
		if err != nil || got != want {
			t.Errorf("FinalizerName(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, bad := range []string{"", "has space", "a/b/c", "-leading"} {
		if _, err := engine.FinalizerName(bad); err == nil {
			t.Errorf("FinalizerName(%q) accepted", bad)
		}
	}
}

// TestTwoRemoveHandlersOnOneKind: both finalizers are added, both handlers
// run when deletion starts (one failing once), and the object goes away
// only after both succeeded. Neither patch may undo the other's finalizer.
func TestTwoRemoveHandlersOnOneKind(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{Workers: 4})
	c := controller(t, f, factorytest.Widgets)
	ctx := t.Context()

	var mu sync.Mutex
	ran := map[string]int{}
	var dbFailures atomic.Int32
	record := func(name string) {
		mu.Lock()
		ran[name]++
		mu.Unlock()
	}
	if err := c.AddRemoveHandler(ctx, "release-ip", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if w := obj.(*testapi.Widget); w.DeletionTimestamp == nil {
			return nil, errors.New("remove handler called on a live object")
		}
		record("release-ip")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddRemoveHandler(ctx, "example.com/drop-db", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		record("drop-db")
		if dbFailures.Add(1) == 1 {
			return nil, errors.New("database busy")
		}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, f)

	w := &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}
	if err := c.Client().Create(ctx, ns, w, metav1.CreateOptions{}, &testapi.Widget{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"rein.dev/release-ip", "example.com/drop-db"}
	eventually(t, 10*time.Second, "both finalizers", func() bool {
		got := &testapi.Widget{}
		if err := c.Client().Get(ctx, ns, "doomed", metav1.GetOptions{}, got); err != nil {
			t.Fatal(err)
		}
		return len(got.Finalizers) == 2 && slices.Contains(got.Finalizers, want[0]) && slices.Contains(got.Finalizers, want[1])
	})

	if err := c.Client().Delete(ctx, ns, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the object to be gone", func() bool {
		err := c.Client().Get(ctx, ns, "doomed", metav1.GetOptions{}, &testapi.Widget{})
		return apierrors.IsNotFound(err)
	})
	mu.Lock()
	defer mu.Unlock()
	if ran["release-ip"] != 1 || ran["drop-db"] != 2 {
		t.Fatalf("remove handler runs: %v; want release-ip 1 and drop-db 2 (one failure, one success)", ran)
	}
}

func TestRemoveHandlerOnConfigMaps(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	c := controller(t, f, factorytest.ConfigMaps)
	removed := make(chan string, 4)
	if err := c.AddRemoveHandler(t.Context(), "cleanup", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		removed <- key
		return obj, nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, f)
	createConfigMap(t, ns, "held", nil)
	cs := adminClient(t).CoreV1().ConfigMaps(ns)
	ctx := context.Background()
	eventually(t, 10*time.Second, "the finalizer", func() bool {
		cm, err := cs.Get(ctx, "held", metav1.GetOptions{})
		return err == nil && slices.Equal(cm.Finalizers, []string{"rein.dev/cleanup"})
	})
	if err := cs.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if key := receive(t, removed, 10*time.Second, "remove handler"); key != ns+"/held" {
		t.Fatalf("remove handler got %q", key)
	}
	eventually(t, 10*time.Second, "the object to be gone", func() bool {
		_, err := cs.Get(ctx, "held", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
