package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/util/workqueue"
)

// queueBenchBatch is how many distinct keys a benchmark round adds before
// taking them all; a controller's resync looks like this.
const queueBenchBatch = 1000

func queueBenchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("namespace-%d/object-%d", i%17, i)
	}
	return keys
}

func newClientGoQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig[string](
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: ""},
	)
}

// benchQueue is what the benchmarks do to a queue, so that one body runs on
// rein's keyQueue and on client-go's workqueue alike.
type benchQueue interface {
	Add(key string)
	Get() (key string, ok bool) // ok is false once the queue is shut down
	Done(key string)
	ShutDown()
}

// reinBenchQueue is a keyQueue whose Get runs under ctx, as workers' Gets
// run under a leadership term's cancellable context.
type reinBenchQueue struct {
	*keyQueue
	ctx    context.Context
	endCtx context.CancelFunc
}

func (q reinBenchQueue) Get() (string, bool) { return q.keyQueue.Get(q.ctx) }
func (q reinBenchQueue) ShutDown()           { q.keyQueue.ShutDown(); q.endCtx() }

type clientGoBenchQueue struct {
	workqueue.TypedRateLimitingInterface[string]
}

func (q clientGoBenchQueue) Get() (string, bool) {
	k, shutdown := q.TypedRateLimitingInterface.Get()
	return k, !shutdown
}

// benchQueues are the queues each benchmark compares, by name.
var benchQueues = []struct {
	name string
	new  func() benchQueue
}{
	{"rein", func() benchQueue {
		ctx, cancel := context.WithCancel(context.Background())
		return reinBenchQueue{newKeyQueue("", RateLimit{}, nil), ctx, cancel}
	}},
	{"client-go", func() benchQueue { return clientGoBenchQueue{newClientGoQueue()} }},
}

// BenchmarkQueue measures Add + Get + Done of one key (ns/op is per key) on
// one goroutine, in rounds of queueBenchBatch distinct keys.
func BenchmarkQueue(b *testing.B) {
	keys := queueBenchKeys(queueBenchBatch)
	for _, impl := range benchQueues {
		b.Run(impl.name, func(b *testing.B) {
			q := impl.new()
			defer q.ShutDown()
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(queueBenchBatch, b.N-done)
				for _, k := range keys[:n] {
					q.Add(k)
				}
				for range n {
					k, _ := q.Get()
					q.Done(k)
				}
				done += n
			}
		})
	}
}

// BenchmarkQueueParallel measures Add + Get + Done of one key with
// GOMAXPROCS goroutines sharing the queue: lock contention, little blocking.
func BenchmarkQueueParallel(b *testing.B) {
	for _, impl := range benchQueues {
		b.Run(impl.name, func(b *testing.B) {
			q := impl.new()
			defer q.ShutDown()
			var worker atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine adds its own keys, one at a time, so every
				// Add has a matching Get and no Get waits for ever.
				keys := queueBenchKeys(queueBenchBatch)
				prefix := fmt.Sprint(worker.Add(1), "/")
				for i := range keys {
					keys[i] = prefix + keys[i]
				}
				for i := 0; pb.Next(); i++ {
					q.Add(keys[i%queueBenchBatch])
					k, _ := q.Get()
					q.Done(k)
				}
			})
		})
	}
}

// BenchmarkQueueWakeup measures the round trip of one key through workers
// that are blocked in Get: Add, wake a worker, Get, Done, report back. It is
// the cost of the wakeup path; both queues pay the same for the report.
func BenchmarkQueueWakeup(b *testing.B) {
	const workers = 2
	keys := queueBenchKeys(queueBenchBatch)
	for _, impl := range benchQueues {
		b.Run(impl.name, func(b *testing.B) {
			q := impl.new()
			processed := make(chan struct{})
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						k, ok := q.Get()
						if !ok {
							return
						}
						q.Done(k)
						processed <- struct{}{}
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				q.Add(keys[i%queueBenchBatch])
				<-processed
			}
			b.StopTimer()
			q.ShutDown()
			wg.Wait()
		})
	}
}
