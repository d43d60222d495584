package engine

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"
)

// Default retry pacing. The per-key cap is deliberately lower than
// client-go's 1000s: a controller whose key fails for minutes should still
// retry it a few times per quarter hour, and resyncs cover the rest.
const (
	defaultBaseDelay = 5 * time.Millisecond
	defaultMaxDelay  = 2 * time.Minute
	defaultQPS       = 50
	defaultBurst     = 300
)

// Priority orders the keys waiting in a queue: Get hands out high keys
// before low ones, except that low keys get a bounded share of the Gets
// (lowShareEvery), so that neither starves the other.
type Priority uint8

const (
	// PriorityLow is for work that is no change: every cached key queued
	// by a start (a leader's initial list, a shard's keys, a handler
	// added after sync), a resync, a RequeueAfter.
	PriorityLow Priority = iota
	// PriorityHigh is for changes (watch events past the initial list)
	// and explicit Enqueue calls: a user waits on them.
	PriorityHigh

	numPriorities = int(PriorityHigh) + 1
)

// String is the priority's metric label: "low" or "high".
func (p Priority) String() string {
	if p == PriorityLow {
		return "low"
	}
	return "high"
}

// lowShareEvery makes at least every lowShareEvery-th key that Get hands
// out while low keys wait a low one, whatever high keys wait. A share, not
// an age bound: in a pass of 100k keys every low key soon waits longer
// than any sensible bound, and aged keys would then queue ahead of
// changes again for the rest of the pass. With a share both promises
// hold for the whole pass: a change waits behind at most one low key per
// lowShareEvery-1 high ones, and under a stream of changes that
// saturates the workers a pass still moves at 1/lowShareEvery of their
// pace, so it ends.
const lowShareEvery = 8

// Bounds of the queue's recycling pools. They make the steady state
// allocation free without keeping the peak of a burst alive for ever.
const (
	maxSpareKeyStates = 4096
	maxSpareWakes     = 256
)

// RateLimit configures retry pacing: per-key exponential backoff combined
// with an overall token bucket (golang.org/x/time/rate); the delay of a retry
// is the larger of the two. Zero or negative fields take their defaults.
type RateLimit struct {
	// BaseDelay is the delay of a key's first retry; each further
	// consecutive failure doubles it. Default 5ms.
	BaseDelay time.Duration
	// MaxDelay caps the per-key backoff. Default 2m. A MaxDelay below
	// BaseDelay is raised to BaseDelay.
	MaxDelay time.Duration
	// QPS is the overall retry rate across all keys. Default 50.
	QPS float64
	// Burst is the number of retries the overall bucket lets through
	// without delay. Default 300.
	Burst int
}

// withDefaults returns r with every unset (zero or negative) field replaced
// by its default.
func (r RateLimit) withDefaults() RateLimit {
	if r.BaseDelay <= 0 {
		r.BaseDelay = defaultBaseDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = defaultMaxDelay
	}
	if r.MaxDelay < r.BaseDelay {
		r.MaxDelay = r.BaseDelay
	}
	if r.QPS <= 0 {
		r.QPS = defaultQPS
	}
	if r.Burst <= 0 {
		r.Burst = defaultBurst
	}
	return r
}

// backoff returns the per-key delay of a retry after failures earlier
// consecutive failures: BaseDelay·2^failures, capped at MaxDelay.
func (r RateLimit) backoff(failures int) time.Duration {
	// base<<failures > max  ⇔  base > max>>failures, which cannot overflow.
	if failures >= 63 || r.BaseDelay > r.MaxDelay>>failures {
		return r.MaxDelay
	}
	return r.BaseDelay << failures
}

// keyQueueMetrics receives the queue's measurements; nil fields, or a nil
// *QueueMetrics, mean the measurement is not taken. The fields use
// client-go's workqueue metric interfaces so that a workqueue.MetricsProvider
// (e.g. controller-runtime's Prometheus one) can supply them.
type keyQueueMetrics struct {
	// Depth is the number of keys waiting to be handed out by Get,
	// including keys re-added while being processed (as in client-go).
	Depth workqueue.GaugeMetric
	// Adds counts Adds that made a key pending (deduplicated Adds are not
	// counted).
	Adds workqueue.CounterMetric
	// Latency observes the seconds a key waited between becoming pending
	// and being handed out by Get.
	Latency workqueue.HistogramMetric
	// WorkDuration observes the seconds between Get and Done of a key.
	WorkDuration workqueue.HistogramMetric
	// Retries counts AddRateLimited calls.
	Retries workqueue.CounterMetric
}

// newKeyQueueMetrics creates the metrics of the queue called name from p. A nil
// p yields nil: no metrics.
func newKeyQueueMetrics(p workqueue.MetricsProvider, name string) *keyQueueMetrics {
	if p == nil {
		return nil
	}
	return &keyQueueMetrics{
		Depth:        p.NewDepthMetric(name),
		Adds:         p.NewAddsMetric(name),
		Latency:      p.NewLatencyMetric(name),
		WorkDuration: p.NewWorkDurationMetric(name),
		Retries:      p.NewRetriesMetric(name),
	}
}

// keyState is everything the queue knows about one key. It exists only
// while the key is pending, processing, delayed or has failures, so keys of
// deleted objects do not accumulate; released states are recycled.
type keyState struct {
	key string
	// pending: the key is to be handed out by Get. It sits in the ready
	// list of its priority unless it is processing, in which case Done
	// moves it there.
	pending    bool
	processing bool
	// prio is the priority of the pending key: an Add of a higher one
	// promotes it, a lower one leaves it.
	prio Priority
	// taken is the priority Get last handed the key out with, high for
	// a key not handed out yet: a retry or a Requeue of the work goes
	// back at it.
	taken Priority
	// delayPrio is the priority the key gets when its AddAfter deadline
	// passes, valid while delayIndex >= 0.
	delayPrio Priority
	// prev and next link the key into its ready list while it waits
	// there.
	prev, next *keyState
	// pendingSince and processingSince are offsets from Queue.epoch.
	pendingSince    time.Duration
	processingSince time.Duration
	// readyAt is the AddAfter deadline, an offset from Queue.epoch, valid
	// while delayIndex >= 0.
	readyAt    time.Duration
	delayIndex int // position in Queue.delayed, -1 when not delayed
	failures   int // consecutive AddRateLimited calls since the last Forget
}

func (s *keyState) idle() bool {
	return !s.pending && !s.processing && s.delayIndex < 0 && s.failures == 0
}

// readyList is a FIFO of keys waiting for Get, linked through their
// states: a promoted key leaves the low list from wherever it waits in
// O(1), and nothing is allocated, the states being recycled.
type readyList struct {
	head, tail *keyState
	n          int
}

func (l *readyList) push(s *keyState) {
	s.prev, s.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
	l.n++
}

func (l *readyList) remove(s *keyState) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = nil, nil
	l.n--
}

func (l *readyList) pop() *keyState {
	s := l.head
	l.remove(s)
	return s
}

// keyQueue is a deduplicating work queue of keys with delayed and
// rate-limited re-adds, like client-go's rate-limiting workqueue, except that
// Get takes a context: a worker stops taking keys as soon as its context ends
// while the queue and its keys stay intact for a later user. This lets a
// controller keep its queue across leadership terms.
//
// Keys wait at a Priority, FIFO within each: high keys are handed out
// first, low ones get a share (lowShareEvery). A key is queued once, at
// the highest priority it was added with: a change to a key that waits at
// low priority moves it to the end of the high list.
//
// A key is handed to one Get caller at a time: added again while it is
// processing, it is handed out again only after Done. Create a Queue with
// newKeyQueue; its methods are safe for concurrent use.
type keyQueue struct {
	name    string
	limits  RateLimit
	bucket  *rate.Limiter
	metrics keyQueueMetrics
	// epoch anchors the monotonic offsets stored in keyState.
	epoch time.Time

	mu    sync.Mutex
	keys  map[string]*keyState
	ready [numPriorities]readyList
	// depth counts the pending keys per priority, those pending while
	// processing included: workqueue_depth by priority.
	depth [numPriorities]int
	// highRun counts the high keys handed out in a row while low keys
	// waited (see lowShareEvery).
	highRun    int
	processing int
	// delayed is a min-heap on readyAt of the keys waiting for an AddAfter
	// deadline. One timer, armed for the earliest deadline, releases them.
	delayed    []*keyState
	timer      *time.Timer
	timerArmed bool
	timerAt    time.Duration
	// waiters are the wake channels (capacity 1) of Get callers blocked on
	// an empty queue, oldest first. Add signals exactly one waiter per key
	// made ready, removing it from the list, so no wakeup is lost and no
	// waiter is woken for nothing.
	waiters      []chan struct{}
	spareWakes   []chan struct{}
	spareStates  []*keyState
	shuttingDown bool
}

// newKeyQueue returns an empty queue called name, pacing retries as rl says
// (zero fields take defaults) and reporting to m, which may be nil.
func newKeyQueue(name string, rl RateLimit, m *keyQueueMetrics) *keyQueue {
	rl = rl.withDefaults()
	q := &keyQueue{
		name:   name,
		limits: rl,
		bucket: rate.NewLimiter(rate.Limit(rl.QPS), rl.Burst),
		epoch:  time.Now(),
		keys:   make(map[string]*keyState),
	}
	if m != nil {
		q.metrics = *m
	}
	return q
}

// setMetrics makes q report to m from now on.
func (q *keyQueue) setMetrics(m *keyQueueMetrics) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if m != nil {
		q.metrics = *m
	}
}

// now returns the monotonic time elapsed since the queue was created.
func (q *keyQueue) now() time.Duration {
	return time.Since(q.epoch)
}

// Add makes key pending at high priority unless it already is: a key that
// is pending and not yet taken is queued once (promoted if it waited at low
// priority); a key being processed is handed out again after its Done. Adds
// after ShutDown are dropped.
func (q *keyQueue) Add(key string) {
	q.AddWithPriority(key, 0, PriorityHigh)
}

// AddWithPriority adds key at priority p once d has passed; d <= 0 adds it
// at once. A pending key stays queued once, at the higher of its priority
// and p. A p above PriorityHigh is PriorityHigh.
func (q *keyQueue) AddWithPriority(key string, d time.Duration, p Priority) {
	p = min(p, PriorityHigh)
	q.mu.Lock()
	if !q.shuttingDown {
		if d <= 0 {
			q.addLocked(q.stateLocked(key), p)
		} else {
			q.addAfterLocked(q.stateLocked(key), d, p)
		}
	}
	q.mu.Unlock()
}

// Requeue makes key pending again at the priority Get last handed it out
// with: work a worker took and could not do goes back as it came.
func (q *keyQueue) Requeue(key string) {
	q.mu.Lock()
	if !q.shuttingDown {
		s := q.stateLocked(key)
		q.addLocked(s, s.taken)
	}
	q.mu.Unlock()
}

// addLocked makes s pending at priority p, or promotes it to p if it is
// pending at a lower one. The caller holds q.mu and has checked
// shuttingDown.
func (q *keyQueue) addLocked(s *keyState, p Priority) {
	if s.pending {
		if p > s.prio {
			// A waiting key was already signalled to a waiter
			// when it became ready: moving it wakes nobody.
			if !s.processing {
				q.ready[s.prio].remove(s)
				q.ready[p].push(s)
			}
			q.depth[s.prio]--
			q.depth[p]++
			s.prio = p
		}
		return
	}
	s.pending = true
	s.prio = p
	q.depth[p]++
	if q.metrics.Latency != nil {
		s.pendingSince = q.now()
	}
	if q.metrics.Adds != nil {
		q.metrics.Adds.Inc()
	}
	if q.metrics.Depth != nil {
		q.metrics.Depth.Inc()
	}
	if !s.processing {
		q.ready[p].push(s)
		q.wakeOneLocked()
	}
}

// stateLocked returns the state of key, creating it if the queue does not
// track key yet. The caller holds q.mu.
func (q *keyQueue) stateLocked(key string) *keyState {
	if s, ok := q.keys[key]; ok {
		return s
	}
	var s *keyState
	if n := len(q.spareStates); n > 0 {
		s = q.spareStates[n-1]
		q.spareStates[n-1] = nil
		q.spareStates = q.spareStates[:n-1]
	} else {
		s = new(keyState)
	}
	*s = keyState{key: key, delayIndex: -1, taken: PriorityHigh}
	q.keys[key] = s
	return s
}

// releaseIfIdleLocked forgets s once nothing refers to it any more, so that
// keys of deleted objects do not accumulate. The caller holds q.mu.
func (q *keyQueue) releaseIfIdleLocked(s *keyState) {
	if !s.idle() {
		return
	}
	delete(q.keys, s.key)
	if len(q.spareStates) < maxSpareKeyStates {
		*s = keyState{}
		q.spareStates = append(q.spareStates, s)
	}
}

// wakeOneLocked hands a wakeup to the oldest blocked Get caller, if any.
// The caller holds q.mu.
func (q *keyQueue) wakeOneLocked() {
	if len(q.waiters) == 0 {
		return
	}
	wake := q.waiters[0]
	copy(q.waiters, q.waiters[1:])
	q.waiters[len(q.waiters)-1] = nil
	q.waiters = q.waiters[:len(q.waiters)-1]
	// A listed channel is empty (see Get), so this send never blocks.
	wake <- struct{}{}
}

// AddAfter adds key at high priority once d has passed; d <= 0 adds it at
// once. Of several outstanding AddAfter calls for a key the earliest
// deadline and the highest priority win. Delayed keys are released by a
// single timer, so no goroutine waits per call.
func (q *keyQueue) AddAfter(key string, d time.Duration) {
	q.AddWithPriority(key, d, PriorityHigh)
}

// addAfterLocked schedules s to be added at p after d > 0. The caller holds
// q.mu and has checked shuttingDown.
func (q *keyQueue) addAfterLocked(s *keyState, d time.Duration, p Priority) {
	now := q.now()
	readyAt := now + d
	switch {
	case s.delayIndex < 0:
		s.readyAt, s.delayPrio = readyAt, p
		s.delayIndex = len(q.delayed)
		q.delayed = append(q.delayed, s)
		q.delayUp(s.delayIndex)
	case readyAt < s.readyAt:
		s.readyAt, s.delayPrio = readyAt, max(s.delayPrio, p)
		q.delayUp(s.delayIndex)
	default:
		// An earlier deadline is already scheduled; it takes the
		// higher priority, so that no high add is lost to a low one.
		s.delayPrio = max(s.delayPrio, p)
		return
	}
	q.armTimerLocked(now)
}

// armTimerLocked makes the timer fire no later than the earliest deadline.
// Firing early is harmless: releaseDelayed re-arms. The caller holds q.mu.
func (q *keyQueue) armTimerLocked(now time.Duration) {
	if len(q.delayed) == 0 {
		return
	}
	at := q.delayed[0].readyAt
	if q.timerArmed && q.timerAt <= at {
		return
	}
	if q.timer == nil {
		q.timer = time.AfterFunc(at-now, q.releaseDelayed)
	} else {
		q.timer.Reset(at - now)
	}
	q.timerArmed, q.timerAt = true, at
}

// releaseDelayed runs on the timer: it adds every key whose deadline has
// passed and re-arms the timer for the next one.
func (q *keyQueue) releaseDelayed() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timerArmed = false
	if q.shuttingDown {
		return
	}
	now := q.now()
	for len(q.delayed) > 0 && q.delayed[0].readyAt <= now {
		s := q.delayPop()
		q.addLocked(s, s.delayPrio)
	}
	q.armTimerLocked(now)
}

// AddRateLimited adds key after the larger of its exponential backoff and
// the overall token bucket's delay, and counts a failure of key. The retry
// gets the priority Get last handed key out with: a failure makes work no
// more urgent than it was, and a pass whose keys fail (a webhook down
// after a takeover) must not bury changes under its retries.
func (q *keyQueue) AddRateLimited(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shuttingDown {
		return
	}
	s := q.stateLocked(key)
	d := q.retryDelayLocked(s)
	if q.metrics.Retries != nil {
		q.metrics.Retries.Inc()
	}
	if d <= 0 {
		q.addLocked(s, s.taken)
		return
	}
	q.addAfterLocked(s, d, s.taken)
}

// retryDelay counts a failure of key and returns the delay its retry gets,
// as AddRateLimited does, without scheduling the retry.
func (q *keyQueue) retryDelay(key string) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stateLocked(key)
	d := q.retryDelayLocked(s)
	q.releaseIfIdleLocked(s)
	return d
}

// retryDelayLocked counts a failure of s and returns the delay of its retry.
// The caller holds q.mu.
func (q *keyQueue) retryDelayLocked(s *keyState) time.Duration {
	d := q.limits.backoff(s.failures)
	s.failures++
	// Reserve, unlike Wait, takes the token now and tells how long to
	// wait for it, so the retry is paced by the delayed heap instead of a
	// blocked caller. Burst >= 1, so the reservation is always OK.
	if r := q.bucket.Reserve(); r.OK() {
		d = max(d, r.Delay())
	}
	return d
}

// Forget resets key's failure count, so its next retry starts from
// BaseDelay again. Call it once the key was processed successfully.
func (q *keyQueue) Forget(key string) {
	q.mu.Lock()
	if s, ok := q.keys[key]; ok {
		s.failures = 0
		q.releaseIfIdleLocked(s)
	}
	q.mu.Unlock()
}

// NumRequeues returns how many times key was AddRateLimited since its last
// Forget.
func (q *keyQueue) NumRequeues(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, ok := q.keys[key]; ok {
		return s.failures
	}
	return 0
}

// Get blocks until a key is ready and hands it out; the caller must call
// Done with it when finished. It returns ok=false, leaving every key in the
// queue, as soon as ctx ends, even if keys are ready, so that a worker stops
// taking work the moment its leadership term ends. After ShutDown it hands
// out the keys still queued and then returns ok=false.
func (q *keyQueue) Get(ctx context.Context) (key string, ok bool) {
	q.mu.Lock()
	for {
		if ctx.Err() != nil {
			// This caller may have been handed the wakeup of a ready
			// key; pass it on so that the key is not left waiting
			// while other callers block.
			if q.readyLocked() > 0 {
				q.wakeOneLocked()
			}
			q.mu.Unlock()
			return "", false
		}
		if q.readyLocked() > 0 {
			break
		}
		if q.shuttingDown {
			q.mu.Unlock()
			return "", false
		}
		wake := q.waitLocked()
		q.mu.Unlock()
		select {
		case <-wake:
			q.mu.Lock()
		case <-ctx.Done():
			q.mu.Lock()
			if !q.removeWaiterLocked(wake) {
				// Signalled concurrently: the send happened under
				// q.mu, so the value is there. Drain it so the
				// channel is empty when reused.
				<-wake
			}
		}
		if len(q.spareWakes) < maxSpareWakes {
			q.spareWakes = append(q.spareWakes, wake)
		}
	}
	s := q.popReadyLocked()
	s.pending = false
	s.processing = true
	s.taken = s.prio
	q.depth[s.prio]--
	now := q.now()
	s.processingSince = now
	q.processing++
	if q.metrics.Depth != nil {
		q.metrics.Depth.Dec()
	}
	if q.metrics.Latency != nil {
		q.metrics.Latency.Observe((now - s.pendingSince).Seconds())
	}
	key = s.key
	q.mu.Unlock()
	return key, true
}

// readyLocked is the number of keys ready for Get. The caller holds q.mu.
func (q *keyQueue) readyLocked() int {
	return q.ready[PriorityLow].n + q.ready[PriorityHigh].n
}

// popReadyLocked takes the next key for Get: the oldest high key, unless
// low keys wait and lowShareEvery-1 high keys in a row went before them.
// The caller holds q.mu and has checked that a key is ready.
func (q *keyQueue) popReadyLocked() *keyState {
	high, low := &q.ready[PriorityHigh], &q.ready[PriorityLow]
	switch {
	case low.n == 0:
		q.highRun = 0
		return high.pop()
	case high.n == 0 || q.highRun >= lowShareEvery-1:
		q.highRun = 0
		return low.pop()
	}
	q.highRun++
	return high.pop()
}

// waitLocked lists a wake channel for a Get caller about to block. The
// caller holds q.mu.
func (q *keyQueue) waitLocked() chan struct{} {
	var wake chan struct{}
	if n := len(q.spareWakes); n > 0 {
		wake = q.spareWakes[n-1]
		q.spareWakes[n-1] = nil
		q.spareWakes = q.spareWakes[:n-1]
	} else {
		wake = make(chan struct{}, 1)
	}
	q.waiters = append(q.waiters, wake)
	return wake
}

// removeWaiterLocked unlists wake and reports whether it was still listed,
// that is, not signalled. The caller holds q.mu.
func (q *keyQueue) removeWaiterLocked(wake chan struct{}) bool {
	for i, w := range q.waiters {
		if w == wake {
			copy(q.waiters[i:], q.waiters[i+1:])
			q.waiters[len(q.waiters)-1] = nil
			q.waiters = q.waiters[:len(q.waiters)-1]
			return true
		}
	}
	return false
}

// Done marks key as processed. If key was added while processing, it is
// queued again now. Done of a key not being processed does nothing.
func (q *keyQueue) Done(key string) {
	q.mu.Lock()
	s, ok := q.keys[key]
	if !ok || !s.processing {
		q.mu.Unlock()
		return
	}
	s.processing = false
	q.processing--
	if q.metrics.WorkDuration != nil {
		q.metrics.WorkDuration.Observe((q.now() - s.processingSince).Seconds())
	}
	if s.pending {
		q.ready[s.prio].push(s)
		q.wakeOneLocked()
	} else {
		q.releaseIfIdleLocked(s)
	}
	q.mu.Unlock()
}

// Len returns the number of keys ready for Get: neither processing nor
// waiting for an AddAfter deadline.
func (q *keyQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.readyLocked()
}

// Depths returns the number of pending keys per priority, indexed by
// Priority, keys added again while processing included: workqueue_depth
// split by priority.
func (q *keyQueue) Depths() [numPriorities]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.depth
}

// Processing returns the number of keys handed out by Get and not yet Done.
func (q *keyQueue) Processing() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.processing
}

// UnfinishedWork returns, over the keys currently processing, the sum of
// their processing times and the longest one. It is computed on call, in time
// proportional to the number of keys the queue tracks, so no goroutine has to
// refresh it periodically.
func (q *keyQueue) UnfinishedWork() (total time.Duration, longest time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.processing == 0 {
		return 0, 0
	}
	now := q.now()
	for _, s := range q.keys {
		if s.processing {
			d := now - s.processingSince
			total += d
			longest = max(longest, d)
		}
	}
	return total, longest
}

// ShutDown wakes every blocked Get caller, stops the timer and drops delayed
// keys and every later Add. Keys already queued are still handed out by Get.
// ShutDown is idempotent.
func (q *keyQueue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shuttingDown {
		return
	}
	q.shuttingDown = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timerArmed = false
	for i, s := range q.delayed {
		q.delayed[i] = nil
		s.delayIndex = -1
		q.releaseIfIdleLocked(s)
	}
	q.delayed = q.delayed[:0]
	for len(q.waiters) > 0 {
		q.wakeOneLocked()
	}
}

// delayUp restores the heap order of q.delayed after the entry at i got an
// earlier deadline (or was appended).
func (q *keyQueue) delayUp(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if q.delayed[parent].readyAt <= q.delayed[i].readyAt {
			return
		}
		q.delaySwap(i, parent)
		i = parent
	}
}

// delayDown restores the heap order of q.delayed after the entry at i got a
// later deadline (or replaced the root).
func (q *keyQueue) delayDown(i int) {
	n := len(q.delayed)
	for {
		least := i
		if l := 2*i + 1; l < n && q.delayed[l].readyAt < q.delayed[least].readyAt {
			least = l
		}
		if r := 2*i + 2; r < n && q.delayed[r].readyAt < q.delayed[least].readyAt {
			least = r
		}
		if least == i {
			return
		}
		q.delaySwap(i, least)
		i = least
	}
}

func (q *keyQueue) delaySwap(i, j int) {
	q.delayed[i], q.delayed[j] = q.delayed[j], q.delayed[i]
	q.delayed[i].delayIndex = i
	q.delayed[j].delayIndex = j
}

// delayPop removes and returns the key with the earliest deadline.
func (q *keyQueue) delayPop() *keyState {
	last := len(q.delayed) - 1
	q.delaySwap(0, last)
	s := q.delayed[last]
	q.delayed[last] = nil
	q.delayed = q.delayed[:last]
	q.delayDown(0)
	s.delayIndex = -1
	return s
}
