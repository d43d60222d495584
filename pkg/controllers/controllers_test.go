// Package controllers_test exercises the generated controllers of built-in
// kinds against a real apiserver.
package controllers_test

import (
	"context"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/controllers/apps"
	"github.com/rein-k8s/rein/pkg/controllers/core"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{}, &env)) }

func TestBuiltinControllers(t *testing.T) {
	ctx := t.Context()
	coreF, err := core.NewFactoryFromConfigWithOptions(env.Config(), framework.Options{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	appsF, err := apps.NewFactoryFromConfigWithOptions(env.Config(), framework.Options{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 8)
	configMaps := coreF.Core().V1().ConfigMap()
	configMaps.OnChange(ctx, "seen", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm != nil {
			seen <- "configmap " + key
		}
		return cm, nil
	})
	namespaces := coreF.Core().V1().Namespace() // cluster-scoped
	namespaces.OnChange(ctx, "seen", func(ctx context.Context, key string, ns *corev1.Namespace) (*corev1.Namespace, error) {
		if ns != nil && ns.Name == "builtin-test" {
			seen <- "namespace " + key
		}
		return ns, nil
	})
	deployments := appsF.Apps().V1().Deployment()
	deployments.OnChange(ctx, "seen", func(ctx context.Context, key string, d *appsv1.Deployment) (*appsv1.Deployment, error) {
		if d != nil {
			seen <- "deployment " + key
		}
		return d, nil
	})
	for _, f := range []*framework.Factory{coreF.Factory, appsF.Factory} {
		if err := engine.OpsOf(f).StartCaches(ctx); err != nil {
			t.Fatal(err)
		}
		if err := engine.OpsOf(f).WaitForCacheSync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := engine.OpsOf(f).StartWorkers(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "builtin", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "builtin-test"}}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "x"}
	if _, err := deployments.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "builtin", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"configmap default/builtin": true, "namespace builtin-test": true, "deployment default/builtin": true}
	for len(want) > 0 {
		select {
		case s := <-seen:
			delete(want, s)
		case <-time.After(10 * time.Second):
			t.Fatalf("handlers did not see %v", want)
		}
	}
}
