package shard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// These tests run members against a real kube-apiserver (make testbin).

var controlPlane = testkit.LazyEnv{Options: testenv.Options{}}

func TestMain(m *testing.M) { os.Exit(controlPlane.Main(m)) }

type testMember struct {
	name   string
	m      *Member
	cut    atomic.Bool
	cancel context.CancelFunc
	done   chan error
}

type cutTransport struct {
	next http.RoundTripper
	cut  *atomic.Bool
}

func (c cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("test: network cut")
	}
	return c.next.RoundTrip(req)
}

const (
	testShards = 16
	testLease  = 2 * time.Second
	testRenew  = 1500 * time.Millisecond
	testRetry  = 300 * time.Millisecond
)

func startMember(t *testing.T, group, name string, hooks ...func(*Config)) *testMember {
	t.Helper()
	tm := &testMember{name: name, done: make(chan error, 1)}
	cfg := rest.CopyConfig(controlPlane.Get(t).Config())
	cfg.QPS = -1
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return cutTransport{next: rt, cut: &tm.cut} })
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := leader.NewIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	logger := logrus.New()
	logger.SetLevel(logrus.WarnLevel)
	mcfg := Config{
		Namespace: "default", Group: group, Shards: testShards, Identity: id,
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry, DrainGrace: time.Second,
		Logger: logrus.NewEntry(logger).WithField("member", name),
	}
	for _, h := range hooks {
		h(&mcfg)
	}
	tm.m, err = NewMember(mcfg, cs.CoordinationV1())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm.cancel = cancel
	go func() { tm.done <- tm.m.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		tm.cut.Store(false)
		cancel()
		<-tm.done
	})
	return tm
}

// ownership collects when each member could write each shard (from the
// protocol's trace: opened, and the instant its writes stopped) and checks
// that no two members' intervals of a shard overlap.
type ownership struct {
	mu        sync.Mutex
	intervals [testShards][]*interval
}

type interval struct {
	member     string
	open, shut time.Time // shut zero while open
}

func (o *ownership) add(m *testMember) {
	m.m.p.mu.Lock()
	defer m.m.p.mu.Unlock()
	m.m.p.trace = func(s int, open bool, at time.Time) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if open {
			o.intervals[s] = append(o.intervals[s], &interval{member: m.name, open: at})
			return
		}
		for _, iv := range slices.Backward(o.intervals[s]) {
			if iv.member == m.name && iv.shut.IsZero() {
				iv.shut = at
				return
			}
		}
	}
}

// check reports overlapping intervals of one shard.
func (o *ownership) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	far := time.Now().Add(time.Hour)
	for s, ivs := range o.intervals {
		for i, a := range ivs {
			for _, b := range ivs[i+1:] {
				if a.member == b.member {
					continue
				}
				aEnd, bEnd := a.shut, b.shut
				if aEnd.IsZero() {
					aEnd = far
				}
				if bEnd.IsZero() {
					bEnd = far
				}
				if a.open.Before(bEnd) && b.open.Before(aEnd) {
					t.Errorf("shard %d: %s could write from %v to %v and %s from %v to %v",
						s, a.member, a.open.Format("15:04:05.000000"), aEnd.Format("15:04:05.000000"), b.member, b.open.Format("15:04:05.000000"), bEnd.Format("15:04:05.000000"))
				}
			}
		}
	}
}

type gap struct {
	shard      int
	from, till time.Time
	prev, next string
}

// gapsSince returns, per shard, the gaps between one member's interval and
// the next that began after t.
func (o *ownership) gapsSince(t time.Time) []gap {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []gap
	for s, ivs := range o.intervals {
		sorted := slices.Clone(ivs)
		slices.SortFunc(sorted, func(a, b *interval) int { return a.open.Compare(b.open) })
		for i := 1; i < len(sorted); i++ {
			prev, next := sorted[i-1], sorted[i]
			if next.open.After(t) && !prev.shut.IsZero() {
				out = append(out, gap{shard: s, from: prev.shut, till: next.open, prev: prev.member, next: next.member})
			}
		}
	}
	return out
}

// balanced reports whether every shard is held by one of live and the
// counts differ by at most one.
func balanced(live ...*testMember) (bool, string) {
	seen := map[int]string{}
	lo, hi := testShards, 0
	var desc []string
	for _, m := range live {
		held := m.m.Held()
		lo, hi = min(lo, len(held)), max(hi, len(held))
		desc = append(desc, fmt.Sprintf("%s:%d", m.name, len(held)))
		for _, s := range held {
			seen[s] = m.name
		}
	}
	return len(seen) == testShards && hi-lo <= 1, fmt.Sprint(desc, " covering ", len(seen))
}

func awaitBalanced(t *testing.T, what string, timeout time.Duration, live ...*testMember) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		ok, desc := balanced(live...)
		if ok {
			return time.Since(began)
		}
		if time.Since(began) > timeout {
			t.Fatalf("%s: not balanced after %v: %s", what, timeout, desc)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func maxGap(gaps []gap) (time.Duration, gap) {
	var worst time.Duration
	var w gap
	for _, g := range gaps {
		if d := g.till.Sub(g.from); d > worst {
			worst, w = d, g
		}
	}
	return worst, w
}

// TestGroupOnApiserver: three members share 16 shards, a fourth joins, one
// leaves gracefully, one is cut off from the apiserver; at every sample
// (1 ms) at most one member may write each shard.
func TestGroupOnApiserver(t *testing.T) {
	group := fmt.Sprintf("g%d", time.Now().UnixNano()%1_000_000)
	own := &ownership{}
	t.Cleanup(func() { own.check(t) }) // after the members' cleanups: their leaves are checked too
	a, b, c := startMember(t, group, "a"), startMember(t, group, "b"), startMember(t, group, "c")
	for _, m := range []*testMember{a, b, c} {
		own.add(m)
	}
	took := awaitBalanced(t, "three members start", 10*time.Second, a, b, c)
	t.Logf("3 members: all %d shards held and balanced %v after start", testShards, took.Round(time.Millisecond))

	// A fourth joins: it gets its share, without overlap.
	d := startMember(t, group, "d")
	own.add(d)
	took = awaitBalanced(t, "a fourth joins", 5*time.Second, a, b, c, d)
	t.Logf("join: balanced over 4 members %v after the fourth started (includes its list and member lease create); target ≤ 1s", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("join took %v", took)
	}

	// b leaves gracefully: each of its shards is handed on.
	held := b.m.Held()
	began := time.Now()
	b.cancel()
	if err := <-b.done; err != nil {
		t.Fatal(err)
	}
	b.done <- nil // for the cleanup
	left := time.Since(began)
	took = awaitBalanced(t, "b leaves", 5*time.Second, a, c, d)
	worst, g := maxGap(own.gapsSince(began))
	t.Logf("graceful leave of a member holding %d shards: left in %v, balanced over 3 after %v; worst shard gap %v (shard %d, %s → %s); target ≤ 100ms",
		len(held), left.Round(time.Millisecond), took.Round(time.Millisecond), worst.Round(time.Millisecond/10), g.shard, g.prev, g.next)
	if worst > time.Second {
		t.Errorf("a shard had no writer for %v during a graceful leave", worst)
	}
	if l, err := controlPlane.Get(t).Admin().Clientset(); err == nil {
		if _, gerr := l.CoordinationV1().Leases("default").Get(t.Context(), MemberLeaseName(group, b.m.cfg.Identity), metav1.GetOptions{}); gerr == nil {
			t.Error("the member lease of the member that left still exists")
		}
	}

	// c is cut off from the apiserver: its fence closes at the renew
	// deadline, the others mark it dead at the lease duration and take
	// its shards.
	cHeld := c.m.Held()
	c.m.p.mu.Lock()
	c.cut.Store(true)
	lastRenew := c.m.p.self.lastRenewSent
	c.m.p.mu.Unlock()
	took = awaitBalanced(t, "c is cut off", 3*testLease+5*time.Second, a, d)
	t.Logf("cut-off member: balanced over the other two %v after the cut", took.Round(time.Millisecond))
	var worstTakeover time.Duration
	for _, g := range own.gapsSince(lastRenew) {
		if slices.Contains(cHeld, g.shard) && g.prev == "c" {
			worstTakeover = max(worstTakeover, g.till.Sub(lastRenew))
		}
	}
	t.Logf("cut-off member (%d shards): its shards taken over at most %v after its last renew was sent (lease duration %v; target ≤ lease + 150ms)",
		len(cHeld), worstTakeover.Round(time.Millisecond), testLease)
	if worstTakeover > testLease+time.Second {
		t.Errorf("takeover took %v after the last renew", worstTakeover)
	}
	if len(c.m.Held()) != 0 {
		t.Errorf("the cut-off member still holds %v", c.m.Held())
	}
}

// OnStop reports each shard a member stops: here, the shards a lone member
// hands to a second one when it joins, each once, and only those.
func TestOnStopReportsHandedOffShards(t *testing.T) {
	group := fmt.Sprintf("g%d", time.Now().UnixNano()%1_000_000)
	stopped := make(chan int, testShards)
	a := startMember(t, group, "a", func(c *Config) {
		c.OnStop = func(shards []int) {
			for _, s := range shards {
				stopped <- s
			}
		}
	})
	awaitBalanced(t, "a alone", 10*time.Second, a)
	b := startMember(t, group, "b")
	awaitBalanced(t, "b joins", 10*time.Second, a, b)
	want := b.m.Held()
	var got []int
	for range want {
		got = append(got, testkit.Receive(t, stopped, 10*time.Second, "OnStop of a shard handed to b"))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("OnStop reported %v; b holds %v", got, want)
	}
	select {
	case s := <-stopped:
		t.Fatalf("OnStop reported shard %d too, which a still holds (%v)", s, a.m.Held())
	default:
	}
}
