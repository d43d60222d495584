package framework

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/lru"

	"github.com/rein-k8s/rein/internal/rbacneeds"
)

// The spam filter's limits, those of client-go's core/v1 event correlator:
// a burst of 25 events per object, then one every five minutes, for the
// 4096 objects seen last.
const (
	eventBurstPerObject = 25
	eventRefillEvery    = 5 * time.Minute
	eventObjectsTracked = 4096
)

// NewEventRecorder returns a recorder that handlers use to emit Events on
// objects through the events.k8s.io/v1 API, as reportingController (a
// name such as "example.com/vm-controller"):
//
//	recorder.Eventf(vm, nil, corev1.EventTypeWarning, "ImageRefused", "Provision", "image %q refused", image)
//
// scheme must know the kinds of the objects passed to it. Repeats of an
// event (same object, type, reason, action and reporter) within six minutes
// are aggregated into one Event with a series count, as client-go's
// tools/events does; beyond that, an object that keeps producing events
// gets a burst of 25 and then one every five minutes (the others are
// dropped), so a handler in a hot error loop cannot flood the apiserver.
// Events are sent in the background, never blocking a handler; the sender
// stops when ctx ends.
func NewEventRecorder(ctx context.Context, client kubernetes.Interface, scheme *runtime.Scheme, reportingController string) events.EventRecorder {
	// A new event is created; a repeat patches its series.
	rbacneeds.Process.Add("the event recorder of "+reportingController,
		rbacneeds.Rule{Group: "events.k8s.io", Resource: "events"}, "create", "patch")
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	// The error is only ever that of starting a watch on the broadcaster
	// itself, which fails only once it is shut down: it is not yet.
	_ = broadcaster.StartRecordingToSinkWithContext(ctx)
	context.AfterFunc(ctx, broadcaster.Shutdown)
	return &spamFilter{next: broadcaster.NewRecorder(scheme, reportingController), limits: lru.New(eventObjectsTracked)}
}

// spamFilter drops an object's events beyond its budget. Aggregation into
// series happens behind it, in the broadcaster.
type spamFilter struct {
	next   events.EventRecorder
	mu     sync.Mutex
	limits *lru.Cache // object key → *rate.Limiter
}

func (f *spamFilter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if !f.allow(regarding) {
		return
	}
	f.next.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (f *spamFilter) allow(regarding runtime.Object) bool {
	obj, err := meta.Accessor(regarding)
	if err != nil {
		// Not an object with metadata (a bare reference): the recorder
		// decides; there is nothing to key a budget on.
		return true
	}
	key := string(obj.GetUID())
	if key == "" {
		key = obj.GetNamespace() + "/" + obj.GetName()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	limiter, ok := f.limits.Get(key)
	if !ok {
		limiter = rate.NewLimiter(rate.Every(eventRefillEvery), eventBurstPerObject)
		f.limits.Add(key, limiter)
	}
	return limiter.(*rate.Limiter).Allow()
}
