package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

type gateKey struct{}

// prefixGate admits keys whose name starts with one of its prefixes, in a
// context that names the admitted prefix, and counts the handlers in
// flight.
type prefixGate struct {
	mu       sync.Mutex
	admit    []string
	inflight int
}

func (g *prefixGate) Enter(key string) (context.Context, func(), bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, name, _ := strings.Cut(key, "/")
	for _, p := range g.admit {
		if strings.HasPrefix(name, p) {
			g.inflight++
			return context.WithValue(context.Background(), gateKey{}, p), func() {
				g.mu.Lock()
				g.inflight--
				g.mu.Unlock()
			}, true
		}
	}
	return nil, nil, false
}

func (g *prefixGate) allow(p string) {
	g.mu.Lock()
	g.admit = append(g.admit, p)
	g.mu.Unlock()
}

// TestKeyGate: workers run only the keys the gate admits, in the gate's
// context; refused keys are dropped, and EnqueueKeys brings them back once
// the gate admits them.
func TestKeyGate(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	gate := &prefixGate{admit: []string{"a-"}}
	engine.OpsOf(f).GateKeys(gate)
	ran := make(chan string, 16)
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "record", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj != nil {
			ran <- key + " in " + ctx.Value(gateKey{}).(string)
		}
		return nil, nil
	})
	for _, name := range []string{"a-1", "b-1", "a-2", "b-2"} {
		createConfigMap(t, ns, name, nil)
	}
	startWithTerm(t, f, t.Context())
	got := map[string]bool{}
	for range 2 {
		got[receive(t, ran, 10*time.Second, "an admitted key")] = true
	}
	if !got[ns+"/a-1 in a-"] || !got[ns+"/a-2 in a-"] {
		t.Fatalf("ran %v; want the a- keys in the gate's context", got)
	}
	select {
	case k := <-ran:
		t.Fatalf("a refused key ran: %s", k)
	case <-time.After(300 * time.Millisecond): // a refused key would run within it
	}
	if n := controller(t, f, factorytest.ConfigMaps).QueueLen(); n != 0 {
		t.Fatalf("%d keys still queued: refused keys must be dropped", n)
	}

	gate.allow("b-")
	if n := engine.OpsOf(f).EnqueueKeys(func(key string) bool { return strings.Contains(key, "/b-") }); n != 2 {
		t.Fatalf("EnqueueKeys queued %d keys, want 2", n)
	}
	got = map[string]bool{}
	for range 2 {
		got[receive(t, ran, 10*time.Second, "a key admitted later")] = true
	}
	if !got[ns+"/b-1 in b-"] || !got[ns+"/b-2 in b-"] {
		t.Fatalf("ran %v; want the b- keys", got)
	}
	eventually(t, 5*time.Second, "no handler in flight", func() bool {
		gate.mu.Lock()
		defer gate.mu.Unlock()
		return gate.inflight == 0
	})
	seen := 0
	engine.OpsOf(f).VisitKeyShards(func(string) int { return 0 }, func(int) { seen++ })
	if seen != 4 {
		t.Fatalf("VisitKeyShards saw %d keys, want 4", seen)
	}
}
