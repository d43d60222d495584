package engine_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// watchPause holds back what watch streams deliver while paused: a
// replica whose watch lags (stopped, or cut off) while the apiserver's
// objects change. Lists pass; a list with the freshness check's page size
// is reported on lists.
type watchPause struct {
	mu     sync.Mutex
	paused bool
	resume chan struct{}
	lists  chan struct{}
}

func newWatchPause() *watchPause {
	return &watchPause{lists: make(chan struct{}, 16)}
}

func (p *watchPause) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused, p.resume = true, make(chan struct{})
	}
}

func (p *watchPause) unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resume)
	}
}

// wait blocks while paused.
func (p *watchPause) wait() {
	p.mu.Lock()
	ch := p.resume
	paused := p.paused
	p.mu.Unlock()
	if paused {
		<-ch
	}
}

func (p *watchPause) RoundTrip(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	q := req.URL.Query()
	switch {
	case q.Get("watch") == "true":
		resp.Body = &pausedBody{ReadCloser: resp.Body, p: p}
	case q.Get("limit") == "5000" && strings.Contains(req.Header.Get("Accept"), "PartialObjectMetadataList"):
		select {
		case p.lists <- struct{}{}:
		default:
		}
	}
	return resp, nil
}

type pausedBody struct {
	io.ReadCloser
	p *watchPause
}

// Read hands out what arrived only while not paused: data read during a
// pause waits for the resume, as events wait in a stopped replica's socket.
func (b *pausedBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	b.p.wait()
	return n, err
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// pausableCache runs a factory with a ConfigMap cache of ns whose watch
// pause can hold back.
func pausableCache(t *testing.T, ns string) (*engine.Factory, *watchPause, cache.Store) {
	pause := newWatchPause()
	cfg := env.Config()
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) { return pause.RoundTrip(next, r) })
	})
	f, err := engine.NewFactory(cfg, newScheme(t), engine.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	c := controller(t, f, factorytest.ConfigMaps)
	run(t, f)
	return f, pause, c.Informer().GetStore()
}

// TestAwaitCurrentWaitsForALaggingWatch: a cache whose watch lags behind
// deletes, creates and updates is not current until the watch delivers
// them; AwaitCurrent returns only then, and the cache it leaves holds the
// apiserver's state. (Issue 29: a woken replica's handler ran on a
// VirtualMachine deleted seconds before and created it on the hypervisor.)
func TestAwaitCurrentWaitsForALaggingWatch(t *testing.T) {
	ctx := t.Context()
	ns := newNamespace(t)
	createConfigMap(t, ns, "deleted", nil)
	createConfigMap(t, ns, "changed", map[string]string{"v": "1"})
	createConfigMap(t, ns, "kept", nil)

	f, pause, store := pausableCache(t, ns)
	if err := engine.OpsOf(f).AwaitCurrent(ctx, nil); err != nil {
		t.Fatalf("a synced cache with no change since: %v", err)
	}
	<-pause.lists

	pause.pause()
	admin := adminClient(t).CoreV1().ConfigMaps(ns)
	if err := admin.Delete(ctx, "deleted", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	changed, err := admin.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "changed"}, Data: map[string]string{"v": "2"}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	createConfigMap(t, ns, "created", nil)

	done := make(chan error, 1)
	go func() { done <- engine.OpsOf(f).AwaitCurrent(ctx, nil) }()
	receive(t, pause.lists, 10*time.Second, "the freshness list")
	if _, ok, _ := store.GetByKey(ns + "/deleted"); !ok {
		t.Fatal("the paused watch delivered the delete: the test does not hold the cache back")
	}
	select {
	case err := <-done:
		t.Fatalf("AwaitCurrent returned (%v) while the cache still held a deleted object", err)
	default:
	}

	pause.unpause()
	if err := receive(t, done, 10*time.Second, "AwaitCurrent after the watch resumed"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := store.GetByKey(ns + "/deleted"); ok {
		t.Error("current cache still holds the deleted ConfigMap")
	}
	if _, ok, _ := store.GetByKey(ns + "/created"); !ok {
		t.Error("current cache lacks the ConfigMap created during the pause")
	}
	obj, _, _ := store.GetByKey(ns + "/changed")
	if cm, _ := obj.(*corev1.ConfigMap); cm == nil || cm.ResourceVersion != changed.ResourceVersion {
		t.Errorf("current cache holds %v, want the update at resourceVersion %s", obj, changed.ResourceVersion)
	}
}

// TestAwaitCurrentOnlyWaitsForMatchingKeys: keys the hold does not serve
// (another shard's) do not hold it back, and a hold that never catches up
// ends with its context, naming how many objects are behind.
func TestAwaitCurrentOnlyWaitsForMatchingKeys(t *testing.T) {
	ctx := t.Context()
	ns := newNamespace(t)
	createConfigMap(t, ns, "mine", nil)
	createConfigMap(t, ns, "theirs", nil)

	f, pause, _ := pausableCache(t, ns)
	pause.pause()
	defer pause.unpause()
	if err := adminClient(t).CoreV1().ConfigMaps(ns).Delete(ctx, "theirs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mine := func(key string) bool { return key == ns+"/mine" }
	if err := engine.OpsOf(f).AwaitCurrent(ctx, mine); err != nil {
		t.Fatalf("the key served is current: %v", err)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := engine.OpsOf(f).AwaitCurrent(short, nil)
	if err == nil || !strings.Contains(err.Error(), "1 of its objects are still behind") {
		t.Fatalf("AwaitCurrent on a cache that cannot catch up = %v, want the count of objects behind", err)
	}
}
