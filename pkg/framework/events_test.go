package framework_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
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
	recorder := framework.NewEventRecorder(t.Context(), cs, newScheme(t), "rein-test")
	recorder.Eventf(cm, corev1.EventTypeWarning, "ProvisionFailed", "image %q refused", "bad:1")

	selector := fields.OneTermEqualSelector("involvedObject.name", "evented").String()
	eventually(t, 10*time.Second, "the event", func() bool {
		list, err := cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range list.Items {
			if ev.Reason == "ProvisionFailed" && ev.Type == corev1.EventTypeWarning &&
				ev.Message == `image "bad:1" refused` && ev.Source.Component == "rein-test" && ev.InvolvedObject.UID == cm.UID {
				return true
			}
		}
		return false
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
