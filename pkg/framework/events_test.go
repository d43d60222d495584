package framework_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/klog/v2"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/framework"
)

func TestEventRecorderEmitsEventsOnObjects(t *testing.T) {
	cs := testkit.Admin(t, env)
	ns := testkit.NewNamespace(t, cs, "events-")
	cm := createConfigMap(t, ns, "evented")
	recorder := framework.NewEventRecorder(t.Context(), cs, newScheme(t), "example.com/rein-test")
	refused := func() {
		recorder.Eventf(cm, nil, corev1.EventTypeWarning, "ProvisionFailed", "Provision", "image %q refused", "bad:1")
	}
	events := func(what string, done func([]eventsv1.Event) bool) []eventsv1.Event {
		var got []eventsv1.Event
		selector := fields.OneTermEqualSelector("regarding.name", "evented").String()
		eventually(t, 10*time.Second, what, func() bool {
			list, err := cs.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: selector})
			if err != nil {
				t.Fatal(err)
			}
			got = list.Items
			return done(got)
		})
		return got
	}
	refused()
	ev := events("the event", func(evs []eventsv1.Event) bool { return len(evs) == 1 })[0]
	if ev.Reason != "ProvisionFailed" || ev.Type != corev1.EventTypeWarning || ev.Action != "Provision" ||
		ev.Note != `image "bad:1" refused` || ev.ReportingController != "example.com/rein-test" || ev.Regarding.UID != cm.UID {
		t.Errorf("event %+v, want a Warning ProvisionFailed/Provision on %s by example.com/rein-test", ev, cm.UID)
	}
	// A repeat becomes a series on the same Event, not a second Event.
	refused()
	events("the event's series", func(evs []eventsv1.Event) bool {
		return len(evs) == 1 && evs[0].Series != nil && evs[0].Series.Count == 2
	})
}

func TestKlogIsRoutedToLogrus(t *testing.T) {
	out := &testkit.SyncBuffer{}
	logger := logrus.New()
	logger.SetOutput(out)
	logger.SetFormatter(&logrus.JSONFormatter{})
	framework.RouteKlogToLogrus(logger)
	t.Cleanup(klog.ClearLogger)

	klog.InfoS("reflector listed", "resource", "configmaps", "items", 3)
	klog.ErrorS(nil, "watch failed", "resource", "widgets")
	klog.V(4).InfoS("too chatty to show at info level")
	klog.Flush()

	got := out.String()
	for _, want := range []string{`"msg":"reflector listed"`, `"resource":"configmaps"`, `"items":3`, `"level":"info"`,
		`"msg":"watch failed"`, `"level":"error"`, `"source":"client-go"`} {
		if !strings.Contains(got, want) {
			t.Errorf("logrus output lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "too chatty") {
		t.Errorf("V(4) reached logrus at info level:\n%s", got)
	}
}
