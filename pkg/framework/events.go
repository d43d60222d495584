package framework

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// NewEventRecorder returns a recorder that handlers use to emit Events on
// objects (`recorder.Eventf(obj, corev1.EventTypeWarning, "ProvisionFailed",
// "...")`), as component. scheme must know the kinds of the objects passed
// to it. Events are sent in the background and the sender stops when ctx
// ends; like client-go's recorder it drops events rather than block a
// handler when the apiserver is slow.
func NewEventRecorder(ctx context.Context, client kubernetes.Interface, scheme *runtime.Scheme, component string) record.EventRecorder {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return broadcaster.NewRecorder(scheme, corev1.EventSource{Component: component})
}
