// Command clientgo is the bare client-go writer the scale scenario holds
// every framework against: no framework and no leader election, only what
// any controller needs at the least. One shared informer on the
// namespace's ConfigMaps, a plain rate-limited workqueue, --workers
// goroutines that mark each ConfigMap with the same merge patch as the
// frameworks' programs. It logs the same lines as they do: "synced" once
// the informer has synced, "leading" as its workers start (at once: it
// leads alone), "first-reconcile" on its first handler call.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/internal/partition"
)

func main() {
	var f common.Flags
	f.Bind(flag.CommandLine)
	flag.Parse()
	cfg := f.Config()
	f.CacheOnly(common.CacheDefault)
	if f.Workload != common.WorkloadMarks || f.Shards > 0 || f.Write != "patch" {
		fmt.Fprintln(os.Stderr, "clientgo marks by merge patch only: no --workload children, --shards or --write update")
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}

	factoryOpts := []informers.SharedInformerOption{informers.WithNamespace(f.Namespace)}
	if f.UIDRange != "" {
		i, n, err := common.ParseFraction("uid-range", f.UIDRange)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		selector := partition.Selector(partition.ByUID, []int{i}, n)
		factoryOpts = append(factoryOpts, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.ShardSelector = selector }))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, factoryOpts...)
	configMaps := factory.Core().V1().ConfigMaps()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := configMaps.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		fmt.Fprintln(os.Stderr, "informer:", err)
		os.Exit(2)
	}
	factory.Start(ctx.Done())
	if !common.AwaitSynced(ctx, configMaps.Informer().HasSynced) {
		return
	}

	var lead common.Leadership
	lead.Leading()
	patch := common.Patch(f.Mark)
	pass := f.MarksPass()
	lister := configMaps.Lister()
	mark := func(key string) error {
		lead.Reconciling()
		ns, name, err := cache.SplitMetaNamespaceKey(key)
		if err != nil {
			return nil
		}
		cm, err := lister.ConfigMaps(ns).Get(name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		pass.Handled(key)
		if cm.Annotations[common.Annotation] == f.Mark {
			return nil
		}
		if err := common.Wait(ctx, f.Delay); err != nil {
			return err
		}
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}
	for range f.Workers {
		go func() {
			for {
				key, quit := queue.Get()
				if quit {
					return
				}
				if err := mark(key); err != nil {
					queue.AddRateLimited(key)
				} else {
					queue.Forget(key)
				}
				queue.Done(key)
			}
		}()
	}
	<-ctx.Done()
	queue.ShutDown()
}
