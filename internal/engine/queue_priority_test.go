package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// addLow queues keys at low priority, as a start queues every cached key.
func addLow(q *keyQueue, keys ...string) {
	for _, k := range keys {
		q.AddWithPriority(k, 0, PriorityLow)
	}
}

func lowKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("low-%d", i)
	}
	return keys
}

// TestQueueHighKeyOvertakesLowBacklog: a change queued behind a full pass is
// the next key handed out, and the pass then goes on in its order.
func TestQueueHighKeyOvertakesLowBacklog(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	lows := lowKeys(10000)
	addLow(q, lows...)
	q.Done(mustGetKey(t, q)) // the pass has begun: low-0
	q.Add("change")
	if got := q.Depths(); got[PriorityLow] != len(lows)-1 || got[PriorityHigh] != 1 {
		t.Fatalf("Depths = %v, want [%d 1]", got, len(lows)-1)
	}
	if k := mustGetKey(t, q); k != "change" {
		t.Fatalf("Get after the change = %q, want change, ahead of %d low keys", k, len(lows)-1)
	}
	q.Done("change")
	for i, want := range lows[1:] {
		if k := mustGetKey(t, q); k != want {
			t.Fatalf("low Get #%d = %q, want %q: low keys in the order queued", i, k, want)
		}
		q.Done(want)
	}
	if q.Depths() != [numPriorities]int{} || q.numTracked() != 0 {
		t.Fatalf("Depths %v, tracked %d after the pass; want zeros", q.Depths(), q.numTracked())
	}
}

// TestQueuePromotesQueuedLowKey: a change to a key waiting at low priority
// moves it ahead, once: it is not queued twice, and a later low add does
// not demote it.
func TestQueuePromotesQueuedLowKey(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	lows := lowKeys(100)
	addLow(q, lows...)
	q.Add("low-50")
	addLow(q, "low-50") // a resync of it: stays high
	if got := q.Len(); got != len(lows) {
		t.Fatalf("Len = %d, want %d: the promoted key must be queued once", got, len(lows))
	}
	if got := q.Depths(); got[PriorityLow] != len(lows)-1 || got[PriorityHigh] != 1 {
		t.Fatalf("Depths = %v, want [%d 1]", got, len(lows)-1)
	}
	if k := mustGetKey(t, q); k != "low-50" {
		t.Fatalf("first Get = %q, want the promoted low-50", k)
	}
	q.Done("low-50")
	var got []string
	for q.Len() > 0 {
		k := mustGetKey(t, q)
		got = append(got, k)
		q.Done(k)
	}
	want := append(append([]string{}, lows[:50]...), lows[51:]...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the promoted key, got %d keys %v..., want the %d others in order", len(got), got[:min(5, len(got))], len(want))
	}
}

// TestQueuePromotesKeyAddedWhileProcessing: a key processing and queued
// again at low priority, then changed, is handed out after its Done ahead of
// the low keys, still once.
func TestQueuePromotesKeyAddedWhileProcessing(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	addLow(q, "k")
	k := mustGetKey(t, q)
	addLow(q, "k", "a", "b")
	q.Add("k")
	if got := q.Depths(); got != [numPriorities]int{2, 1} {
		t.Fatalf("Depths = %v, want [2 1]", got)
	}
	if got := q.Len(); got != 2 {
		t.Fatalf("Len = %d while k processes, want 2 (a, b)", got)
	}
	q.Done(k)
	for _, want := range []string{"k", "a", "b"} {
		if got := mustGetKey(t, q); got != want {
			t.Fatalf("Get = %q, want %q", got, want)
		}
		q.Done(want)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d, want 0: k queued twice", q.Len())
	}
}

// TestQueueLowKeysGetAShareUnderStreamOfHighKeys: while high keys keep
// coming faster than they are taken, every lowShareEvery-th Get still takes
// a low key, so a pass ends; and a high key never waits behind more than
// one low key in a row.
func TestQueueLowKeysGetAShareUnderStreamOfHighKeys(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	lows := lowKeys(100)
	addLow(q, lows...)
	limit := len(lows) * lowShareEvery
	nextLow, highsInRow, gets := 0, 0, 0
	for nextLow < len(lows) {
		if gets == limit {
			t.Fatalf("%d of %d low keys handed out after %d Gets, want all", nextLow, len(lows), limit)
		}
		// Two changes per Get: the high list never empties.
		q.Add(fmt.Sprint("high-", 2*gets))
		q.Add(fmt.Sprint("high-", 2*gets+1))
		k := mustGetKey(t, q)
		gets++
		q.Done(k)
		if k != lows[min(nextLow, len(lows)-1)] {
			highsInRow++
			if highsInRow >= lowShareEvery {
				t.Fatalf("Get #%d: %d high keys in a row while low keys wait, want at most %d", gets, highsInRow, lowShareEvery-1)
			}
			continue
		}
		if highsInRow != lowShareEvery-1 {
			t.Fatalf("Get #%d: a low key after %d high ones, want %d: high keys wait behind one low key per %d", gets, highsInRow, lowShareEvery-1, lowShareEvery-1)
		}
		highsInRow = 0
		nextLow++
	}
	if k := mustGetKey(t, q); k[:5] != "high-" {
		t.Fatalf("Get after the pass = %q, want a high key", k)
	}
}

// TestQueueRetryAndRequeueKeepPriority: a key that failed, or that a
// worker could not run, goes back at the priority it was handed out with.
func TestQueueRetryAndRequeueKeepPriority(t *testing.T) {
	q := newKeyQueue("t", unbucketedRetries, nil)
	addLow(q, "low")
	q.Add("high")
	h, l := mustGetKey(t, q), mustGetKey(t, q)
	if h != "high" || l != "low" {
		t.Fatalf("Gets = %q, %q; want high, low", h, l)
	}
	q.AddRateLimited(l)
	q.Requeue(h)
	q.Done(h)
	q.Done(l)
	waitForQueue(t, "the retry's backoff to pass", func() bool { return q.Len() == 2 })
	if got := q.Depths(); got != [numPriorities]int{1, 1} {
		t.Fatalf("Depths = %v, want [1 1]: each key back at its priority", got)
	}
	// A key never handed out retries at high priority.
	q.AddRateLimited("new")
	waitForQueue(t, "the retry's backoff to pass", func() bool { return q.Len() == 3 })
	if got := q.Depths(); got != [numPriorities]int{1, 2} {
		t.Fatalf("Depths = %v, want [1 2]", got)
	}
}

// TestQueueDelayedKeyTakesHighestPriority: of two AddAfter calls for one key
// the earlier deadline and the higher priority win.
func TestQueueDelayedKeyTakesHighestPriority(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	q.AddWithPriority("a", 5*time.Millisecond, PriorityLow)
	q.AddWithPriority("a", time.Hour, PriorityHigh)
	q.AddWithPriority("b", 5*time.Millisecond, PriorityLow)
	waitForQueue(t, "the deadlines to pass", func() bool { return q.Len() == 2 })
	if got := q.Depths(); got != [numPriorities]int{1, 1} {
		t.Fatalf("Depths = %v, want [1 1]: a high, b low", got)
	}
	if k := mustGetKey(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
}

// TestQueueOneWorkerPerKeyWithPriorities: with keys added at both
// priorities and promoted while queued or processing, no key is handed to
// two workers at once, and none is lost.
func TestQueueOneWorkerPerKeyWithPriorities(t *testing.T) {
	const (
		workers   = 8
		producers = 4
		keys      = 50
		addsEach  = 5000
	)
	q := newKeyQueue("t", RateLimit{}, nil)
	var mu sync.Mutex
	addGen := map[string]int{}
	processedGen := map[string]int{}
	inFlight := map[string]bool{}

	ctx, stopWorkers := context.WithCancel(context.Background())
	var workersDone sync.WaitGroup
	for range workers {
		workersDone.Go(func() {
			for {
				key, ok := q.Get(ctx)
				if !ok {
					return
				}
				mu.Lock()
				if inFlight[key] {
					t.Errorf("key %s handed to two workers at once", key)
				}
				inFlight[key] = true
				processedGen[key] = addGen[key]
				mu.Unlock()
				// Hold the key a while, so that adds (and
				// promotions) land while it processes.
				runtime.Gosched()
				mu.Lock()
				delete(inFlight, key)
				mu.Unlock()
				q.Done(key)
			}
		})
	}
	var producersDone sync.WaitGroup
	for p := range producers {
		producersDone.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for range addsEach {
				key := fmt.Sprint(rng.IntN(keys))
				mu.Lock()
				addGen[key]++
				mu.Unlock()
				q.AddWithPriority(key, 0, Priority(rng.IntN(numPriorities)))
			}
		})
	}
	producersDone.Wait()
	waitForQueue(t, "the queue to drain", func() bool { return q.Len() == 0 && q.Processing() == 0 })
	stopWorkers()
	workersDone.Wait()
	for key, gen := range addGen {
		if processedGen[key] != gen {
			t.Errorf("key %s: last processing saw add #%d of %d: an Add was lost", key, processedGen[key], gen)
		}
	}
	if q.Depths() != [numPriorities]int{} || q.numTracked() != 0 {
		t.Fatalf("Depths %v, tracked %d after drain; want zeros", q.Depths(), q.numTracked())
	}
}

func TestQueuePromotionDoesNotAllocate(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	lows := lowKeys(100)
	cycle := func() {
		addLow(q, lows...)
		for _, k := range lows[:10] {
			q.Add(k)
		}
		for range lows {
			k, _ := q.Get(context.Background())
			q.Done(k)
		}
	}
	cycle() // warm up: map and spare states reach their size
	if allocs := testing.AllocsPerRun(20, cycle); allocs > 0 {
		t.Fatalf("%v allocations per cycle of %d keys, want 0", allocs, len(lows))
	}
}
