package related_test

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/related"
)

// Re-run a ServiceAccount's handler whenever a Secret it references
// changes: the ServiceAccounts' cache indexes the Secrets they name, and
// Referencing resolves a Secret to them through that index. (The example
// runs against the test control plane; in a program pkg/start runs the
// caches and workers.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := exampleFactory() // on the test control plane
	accounts := generic.NewController[*corev1.ServiceAccount, *corev1.ServiceAccountList](factory, generic.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("ServiceAccount"), Plural: "serviceaccounts", Namespaced: true,
	})
	if err := accounts.Informer().AddIndexers(cache.Indexers{"secret": func(obj any) ([]string, error) {
		var keys []string
		for _, ref := range obj.(*corev1.ServiceAccount).Secrets {
			keys = append(keys, obj.(*corev1.ServiceAccount).Namespace+"/"+ref.Name)
		}
		return keys, nil
	}}); err != nil {
		fmt.Println(err)
		return
	}
	ran := make(chan string, 10)
	accounts.OnChange(ctx, "uses-secret", func(ctx context.Context, key string, sa *corev1.ServiceAccount) (*corev1.ServiceAccount, error) {
		if key == "default/example-robot" {
			ran <- key
		}
		return sa, nil
	})
	secrets := generic.NewController[*corev1.Secret, *corev1.SecretList](factory, generic.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("Secret"), Plural: "secrets", Namespaced: true,
	})
	if err := related.Watch(ctx, "secrets", related.Referencing(accounts.Informer().GetIndexer(), "secret"), accounts, secrets.Informer()); err != nil {
		fmt.Println(err)
		return
	}
	workers, err := startReplica(ctx, factory) // pkg/start's work in a program
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { cancel(); _ = workers.Wait(10 * time.Second) }()

	clients, err := env.Admin().Clientset()
	if err != nil {
		fmt.Println(err)
		return
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "example-token"}}
	if _, err := clients.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := clients.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "example-robot"},
		Secrets: []corev1.ObjectReference{{Name: "example-token"}}}, metav1.CreateOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		_ = clients.CoreV1().ServiceAccounts("default").Delete(context.Background(), "example-robot", metav1.DeleteOptions{})
		_ = clients.CoreV1().Secrets("default").Delete(context.Background(), "example-token", metav1.DeleteOptions{})
	}()
	fmt.Println("ran for", <-ran, "(created)")

	secret.StringData = map[string]string{"token": "rotated"}
	if _, err := clients.CoreV1().Secrets("default").Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ran for", <-ran, "(its Secret changed)")

	// Output:
	// ran for default/example-robot (created)
	// ran for default/example-robot (its Secret changed)
}
