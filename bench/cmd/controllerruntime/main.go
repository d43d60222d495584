// Command controllerruntime is the benchmark controller built on
// sigs.k8s.io/controller-runtime: a manager with leader election and one
// controller for ConfigMaps; --warmup sets the controller's EnableWarmup,
// --priority-queue=false turns its UsePriorityQueue off (v0.25.2 has it on
// by default), --cache metadata caches their metadata only (builder.OnlyMetadata).
// --workload pass: every reconcile waits --delay and writes nothing, and
// logs the changes it sees.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/rein-k8s/rein/bench/internal/common"
)

func main() {
	var f common.Flags
	// controller-runtime registers its own --kubeconfig on flag.CommandLine.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	f.Bind(fs)
	warmup := fs.Bool("warmup", false, "the controller's EnableWarmup option")
	priorityQueue := fs.Bool("priority-queue", true, "the controller's UsePriorityQueue option (controller-runtime's default: on)")
	_ = fs.Parse(os.Args[1:])
	cfg := f.Config()
	f.CacheOnly(common.CacheDefault, common.CacheMetadata)
	ld, rd, rp := f.LeaseDuration, f.RenewDeadline, f.RetryPeriod
	// controller-runtime's own lock replaces the user agent with client-go's
	// default + "/leader-election", which would hide which process sent a
	// request; the same lock built here (identity hostname_uuid, as
	// controller-runtime makes it) keeps the process's user agent.
	host, _ := os.Hostname()
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, f.LeaseNamespace, f.LeaseName,
		kubernetes.NewForConfigOrDie(cfg).CoreV1(), kubernetes.NewForConfigOrDie(cfg).CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())})
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		os.Exit(2)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                              clientgoscheme.Scheme,
		Cache:                               cache.Options{DefaultNamespaces: map[string]cache.Config{f.Namespace: {}}},
		Metrics:                             server.Options{BindAddress: "0"},
		HealthProbeBindAddress:              "0",
		LeaderElection:                      true,
		LeaderElectionID:                    f.LeaseName,
		LeaderElectionNamespace:             f.LeaseNamespace,
		LeaderElectionReleaseOnCancel:       true,
		LeaderElectionResourceLockInterface: lock,
		LeaseDuration:                       &ld,
		RenewDeadline:                       &rd,
		RetryPeriod:                         &rp,
		Controller:                          config.Controller{EnableWarmup: warmup, UsePriorityQueue: priorityQueue},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(2)
	}
	var lead common.Leadership
	c := mgr.GetClient()
	patch := client.RawPatch("application/merge-patch+json", common.Patch(f.Mark))
	pass := f.MarksPass()
	var changes common.Changes
	// The object the controller watches and reads: the ConfigMap, or with
	// --cache metadata its metadata (For(..., OnlyMetadata) caches
	// *metav1.PartialObjectMetadata).
	newObject := func() client.Object { return &corev1.ConfigMap{} }
	var forOpts []builder.ForOption
	if f.Cache == common.CacheMetadata {
		newObject = func() client.Object {
			m := &metav1.PartialObjectMetadata{}
			m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
			return m
		}
		forOpts = append(forOpts, builder.OnlyMetadata)
	}
	err = ctrl.NewControllerManagedBy(mgr).For(&corev1.ConfigMap{}, forOpts...).
		WithOptions(ctrlOptions(f.Workers)).
		Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			lead.Reconciling()
			obj := newObject()
			if err := c.Get(ctx, req.NamespacedName, obj); err != nil {
				return reconcile.Result{}, client.IgnoreNotFound(err)
			}
			pass.Handled(req.String())
			if f.Workload == common.WorkloadPass {
				changes.Saw(obj.GetName(), obj.GetAnnotations())
				return reconcile.Result{}, common.Wait(ctx, f.Delay)
			}
			if obj.GetAnnotations()[common.Annotation] == f.Mark {
				return reconcile.Result{}, nil
			}
			if err := common.Wait(ctx, f.Delay); err != nil {
				return reconcile.Result{}, err
			}
			if f.Write == "update" {
				obj.SetAnnotations(common.Marked(obj.GetAnnotations(), f.Mark)) // obj is the client's copy
				return reconcile.Result{}, c.Update(ctx, obj)
			}
			return reconcile.Result{}, c.Patch(ctx, obj, patch)
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(2)
	}
	// "synced" once the controller's informer has synced. Its informer is
	// made when the controller starts its source: at once with warmup,
	// else once elected; the probe runs at the same point, so it finds
	// that informer rather than starting one early.
	if err := mgr.Add(syncedProbe{cache: mgr.GetCache(), obj: newObject(), elected: !*warmup}); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(2)
	}
	ctx := ctrl.SetupSignalHandler()
	go func() {
		select {
		case <-mgr.Elected():
			lead.Leading()
		case <-ctx.Done():
		}
	}()
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

// syncedProbe logs "synced" once the informer of obj has synced; elected
// runs it only on the leader.
type syncedProbe struct {
	cache   cache.Cache
	obj     client.Object
	elected bool
}

func (p syncedProbe) NeedLeaderElection() bool { return p.elected }

func (p syncedProbe) Start(ctx context.Context) error {
	inf, err := p.cache.GetInformer(ctx, p.obj, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	common.AwaitSynced(ctx, inf.HasSynced)
	return nil
}
