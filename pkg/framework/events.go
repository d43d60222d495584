package framework

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/rein-k8s/rein/internal/rbacneeds"
)

// NewEventRecorder returns a recorder that handlers use to emit Events on
// objects (`recorder.Eventf(obj, corev1.EventTypeWarning, "ProvisionFailed",
// "...")`), as component. scheme must know the kinds of the objects passed
// to it. Events are sent in the background and the sender stops when ctx
// ends; like client-go's recorder it drops events rather than block a
// handler when the apiserver is slow.
func NewEventRecorder(ctx context.Context, client kubernetes.Interface, scheme *runtime.Scheme, component string) record.EventRecorder {
	// client-go's recorder creates an Event in the object's namespace, and
	// patches it to count a repeat (core/v1 Events; not events.k8s.io).
	rbacneeds.Process.Add("the event recorder of "+component, rbacneeds.Rule{Resource: "events"}, "create", "patch")
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return broadcaster.NewRecorder(scheme, corev1.EventSource{Component: component})
}
