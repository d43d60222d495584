package framework_test

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
)

// Shape one kind's cache: only the ConfigMaps labelled for this
// controller, without their data. What the selector leaves out is never
// sent; what the transform drops is never kept. (Against the test control
// plane: runWorkers stands for what pkg/start does in a program.)
func ExampleKindCache() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	configMapKind := corev1.SchemeGroupVersion.WithKind("ConfigMap")
	factory, err := framework.NewFactory(env.Config(), clientgoscheme.Scheme, framework.Options{
		Namespace: "default",
		CachePerKind: map[schema.GroupVersionKind]framework.KindCache{
			configMapKind: {
				Labels: labels.SelectorFromSet(labels.Set{"example.rein.dev/cache": "yes"}),
				Transform: func(obj any) (any, error) {
					if cm, ok := obj.(*corev1.ConfigMap); ok {
						cm.Data = nil // handlers here read names and labels only
					}
					return obj, nil
				},
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	configMaps := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory,
		generic.Resource{GVK: configMapKind, Plural: "configmaps", Namespaced: true})
	seen := make(chan string, 4)
	configMaps.OnChange(ctx, "report", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm != nil {
			seen <- fmt.Sprintf("%s: %d data keys", key, len(cm.Data))
		}
		return nil, nil
	})
	stop, err := runWorkers(ctx, factory)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	clientset, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		fmt.Println(err)
		return
	}
	cms := clientset.CoreV1().ConfigMaps("default")
	for name, lbl := range map[string]string{"example-cached": "yes", "example-not-cached": "no"} {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"example.rein.dev/cache": lbl}},
			Data:       map[string]string{"payload": "kept on the server, not in the cache"},
		}, metav1.CreateOptions{}); err != nil {
			fmt.Println(err)
			return
		}
		defer func() { _ = cms.Delete(context.Background(), name, metav1.DeleteOptions{}) }()
	}
	fmt.Println(<-seen)
	// Output:
	// default/example-cached: 0 data keys
}
