package fake_test

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/generic/fake"
)

// register is the code a program's main runs on its factory's controller
// (corectrl.New(factory).ConfigMap()); the test runs it on the fake's.
func register(ctx context.Context, configMaps corectrl.ConfigMapController) {
	configMaps.OnChange(ctx, "stamp", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm == nil || cm.Data["stamped"] == "yes" {
			return nil, nil // deleted, or done already
		}
		token, _ := fence.TokenFrom(ctx)
		cm.Data = map[string]string{"stamped": "yes", "by": token.String()}
		return configMaps.Update(ctx, cm) // the next handler sees the answer
	})
}

// Register an OnChange handler on a ConfigMap controller and run its chain
// on one key, with no apiserver.
func Example() {
	ctx := context.Background()
	env, err := fake.New(clientgoscheme.Scheme, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "example"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	configMaps := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](env.Factory(), corectrl.ConfigMapResource)
	register(ctx, configMaps)

	// reconcile runs the chain on the key and reads the object back.
	reconcile := func() (*corev1.ConfigMap, error) {
		if err := env.Reconcile(ctx, configMaps.GroupVersionKind(), "default/example"); err != nil {
			return nil, err
		}
		return configMaps.Get(ctx, "default", "example", metav1.GetOptions{})
	}
	cm, err := reconcile()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stamped:", cm.Data["stamped"], "by:", cm.Data["by"])

	// The handler wrote once; run again, it has nothing to do.
	again, err := reconcile()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("written again:", again.ResourceVersion != cm.ResourceVersion)
	// Output:
	// stamped: yes by: fake/fake/1
	// written again: false
}

// A handler that asks to look again later (generic.RequeueAfter), or that
// queues another key, leaves the request in Enqueued.
func ExampleEnv_Enqueued() {
	ctx := context.Background()
	env, err := fake.New(clientgoscheme.Scheme)
	if err != nil {
		fmt.Println(err)
		return
	}
	configMaps := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](env.Factory(), corectrl.ConfigMapResource)
	configMaps.OnChange(ctx, "poll", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		configMaps.Enqueue("default", "parent")
		return nil, generic.RequeueAfter(30 * time.Second)
	})
	if err := env.Reconcile(ctx, configMaps.GroupVersionKind(), "default/child"); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range env.Enqueued() {
		fmt.Println(r.Key, r.After)
	}
	// Output:
	// default/parent 0s
	// default/child 30s
}
