package engine

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func cm(name, rv string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
}

// The comparison of a cache with the apiserver's list, case by case: what
// holds a hold back and what lets it go.
func TestBehindCases(t *testing.T) {
	all := func(string) bool { return true }
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	var deletions changeSignal
	stop := deletions.record()
	defer stop()
	for _, obj := range []*corev1.ConfigMap{cm("same", "10"), cm("older", "10"), cm("newer", "30"), cm("gone", "10"), cm("created-since", "30")} {
		if err := store.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	live := liveVersions{
		keys: map[string]string{"ns/same": "10", "ns/older": "20", "ns/newer": "20", "ns/not-yet": "15", "ns/deleted-since": "15"},
		rvs:  map[string]string{"": "25"},
	}
	// deleted-since was listed, then deleted: the cache dropped it and the
	// delete's version (26) is past the listed one.
	deletions.gone(cm("deleted-since", "26"))

	stale := behind(store, &deletions, live, all)
	want := map[string]string{"ns/older": "20", "ns/not-yet": "15", "ns/gone": ""}
	if len(stale) != len(want) {
		t.Fatalf("behind = %v, want %v", stale, want)
	}
	for k, v := range want {
		if got, ok := stale[k]; !ok || got != v {
			t.Errorf("behind[%s] = %q, %v; want %q", k, got, ok, v)
		}
	}

	// The cache catches up: the update arrives, the create arrives, the
	// deleted object leaves (a relist's tombstone for it).
	if err := store.Update(cm("older", "21")); err != nil {
		t.Fatal(err)
	}
	stillBehind(store, &deletions, stale, live)
	if _, ok := stale["ns/older"]; ok || len(stale) != 2 {
		t.Fatalf("after the update: %v", stale)
	}
	if err := store.Add(cm("not-yet", "15")); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(cm("gone", "10")); err != nil {
		t.Fatal(err)
	}
	stillBehind(store, &deletions, stale, live)
	if len(stale) != 0 {
		t.Fatalf("a current cache is still behind on %v", stale)
	}

	// A listed key absent from the cache and never deleted is behind; a
	// relist's tombstone of it makes it current.
	live2 := liveVersions{keys: map[string]string{"ns/lost": "5"}, rvs: map[string]string{"": "25"}}
	for _, key := range store.ListKeys() {
		obj, _, _ := store.GetByKey(key)
		live2.keys[key] = obj.(*corev1.ConfigMap).ResourceVersion
	}
	stale = behind(store, &deletions, live2, all)
	if len(stale) != 1 {
		t.Fatalf("an object the cache never got: behind = %v", stale)
	}
	deletions.gone(cache.DeletedFinalStateUnknown{Key: "ns/lost", Obj: cm("lost", "4")})
	stillBehind(store, &deletions, stale, live2)
	if len(stale) != 0 {
		t.Fatalf("after a relist found it gone: behind = %v", stale)
	}

	// Keys the hold does not serve never hold it back.
	if got := behind(store, &deletions, liveVersions{keys: map[string]string{"ns/other": "99"}, rvs: map[string]string{"": "99"}}, func(string) bool { return false }); len(got) != 0 {
		t.Fatalf("keys outside the hold: %v", got)
	}
}
