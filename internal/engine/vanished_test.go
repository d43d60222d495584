package engine

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// noClient is a ResourceClient that must not be called.
type noClient struct{ ResourceClient }

// An object deleted past its remove handlers' finalizers
// (kubernetes#77988) still gets them run, on its last state, after the
// change handlers; each until it succeeds, once. The apiserver's race
// cannot be produced at will, so the informer's delete callback is called
// by hand here; TestFinalizersComeFirst meets the race for real.
func TestVanishedPastFinalizers(t *testing.T) {
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{}, &corev1.ConfigMap{}, 0, cache.Indexers{})
	c, err := NewManualController(ManualConfig{
		Resource:  Resource{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true},
		Client:    noClient{},
		Informer:  informer,
		NewObject: func() (runtime.Object, error) { return &corev1.ConfigMap{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var calls []string
	c.AddHandler(ctx, "provision", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj != nil {
			t.Errorf("change handler got %v, want nil: the object is gone", obj)
		}
		calls = append(calls, "provision")
		return nil, nil
	})
	busy := 1
	remove := func(name string) Handler {
		return func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
			cm := obj.(*corev1.ConfigMap)
			if cm.DeletionTimestamp == nil || cm.UID != "uid-1" || key != "ns/gone" {
				t.Errorf("%s got %s %s (deletionTimestamp %v), want the last state of ns/gone with a deletionTimestamp", name, key, cm.UID, cm.DeletionTimestamp)
			}
			calls = append(calls, name)
			if name == "release-ip" && busy > 0 {
				busy--
				return nil, errors.New("busy")
			}
			return obj, nil
		}
	}
	for _, name := range []string{"deprovision", "release-ip"} {
		if err := c.AddRemoveHandler(ctx, name, remove(name)); err != nil {
			t.Fatal(err)
		}
	}
	ended, cancel := context.WithCancel(ctx)
	if err := c.AddRemoveHandler(ended, "ended", remove("ended")); err != nil {
		t.Fatal(err)
	}
	cancel()

	last := func(uid string, finalizers ...string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gone", UID: types.UID("uid-" + uid), Finalizers: finalizers}}
	}
	// Not noted: deleted through its finalizers, or never held by ours.
	deleting := last("1", "rein.dev/deprovision")
	deleting.DeletionTimestamp = &metav1.Time{}
	c.noteVanished(deleting)
	c.noteVanished(last("1", "example.com/other"))
	if _, err := c.Process(ctx, "ns/gone"); err != nil || len(calls) != 1 {
		t.Fatalf("nothing vanished: %v, calls %v; want only the change handler", err, calls)
	}

	calls = nil
	c.noteVanished(cache.DeletedFinalStateUnknown{Key: "ns/gone", Obj: last("1", "rein.dev/deprovision", "rein.dev/release-ip", "rein.dev/ended")})
	c.noteVanished(last("1", "rein.dev/deprovision", "rein.dev/release-ip")) // the same object again
	_, err = c.Process(ctx, "ns/gone")
	var herr *HandlerError
	if !errors.As(err, &herr) || herr.Handler != "release-ip" {
		t.Fatalf("first run: %v, want release-ip's failure", err)
	}
	if want := []string{"provision", "deprovision", "release-ip"}; !slices.Equal(calls, want) {
		t.Fatalf("first run: calls %v, want %v", calls, want)
	}
	calls = nil
	if _, err := c.Process(ctx, "ns/gone"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"provision", "release-ip"}; !slices.Equal(calls, want) {
		t.Fatalf("retry: calls %v, want %v", calls, want)
	}
	calls = nil
	if _, err := c.Process(ctx, "ns/gone"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"provision"}; !slices.Equal(calls, want) {
		t.Fatalf("after both succeeded: calls %v, want %v", calls, want)
	}
	c.vmu.Lock()
	left := len(c.vanished)
	c.vmu.Unlock()
	if left != 0 {
		t.Fatalf("%d keys still noted as vanished, want none", left)
	}
}
