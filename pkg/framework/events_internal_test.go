package framework

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/lru"
)

// An object in an error loop gets its burst, then nothing until the budget
// refills; another object is not held back by it.
func TestSpamFilterBoundsEventsPerObject(t *testing.T) {
	fake := events.NewFakeRecorder(100)
	filter := &spamFilter{next: fake, limits: lru.New(eventObjectsTracked)}
	noisy := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "noisy", UID: "u-noisy"}}
	quiet := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "quiet", UID: "u-quiet"}}
	for i := range 40 {
		filter.Eventf(noisy, nil, corev1.EventTypeWarning, fmt.Sprintf("Failed%d", i), "Reconcile", "attempt %d", i)
	}
	filter.Eventf(quiet, nil, corev1.EventTypeNormal, "Ready", "Reconcile", "ready")
	if got, want := len(fake.Events), eventBurstPerObject+1; got != want {
		t.Fatalf("%d events passed, want %d (a burst of %d for the noisy object and the quiet one's)", got, want, eventBurstPerObject)
	}
}
