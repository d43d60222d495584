// Command clientgo is a replica elected with client-go's own
// tools/leaderelection (LeaseLock, ReleaseOnCancel), the way most
// controllers are today. rein's tests run it beside rein replicas on the
// same Lease to show the two never lead at once. While leading it stamps
// the ConfigMaps of one namespace as test/e2e/replica does, polling.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func main() {
	fs := flag.NewFlagSet("clientgo", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	namespace := fs.String("namespace", "", "namespace of the ConfigMaps")
	leaseName := fs.String("leader-elect-resource-name", "", "lease name")
	leaseNamespace := fs.String("leader-elect-resource-namespace", "", "lease namespace")
	leaseDuration := fs.Duration("leader-elect-lease-duration", 15*time.Second, "")
	renewDeadline := fs.Duration("leader-elect-renew-deadline", 10*time.Second, "")
	retryPeriod := fs.Duration("leader-elect-retry-period", 2*time.Second, "")
	// Accepted for a command line shared with the rein replica.
	fs.String("metrics-bind-address", "", "")
	fs.String("health-probe-bind-address", "", "")
	fs.Duration("drain-grace", 0, "")
	_ = fs.Parse(os.Args[1:])

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	identity := fmt.Sprintf("%s_%d", os.Getenv("POD_NAME"), os.Getpid())
	writer := fmt.Sprintf("rein-e2e/clientgo-%s/%d", os.Getenv("POD_NAME"), os.Getpid())
	cfg.UserAgent = writer
	cs := kubernetes.NewForConfigOrDie(cfg)
	fmt.Printf("identity=%s\n", identity)

	// Signals end the work first; the elector's context (and with it the
	// release) ends only after the work has returned, which client-go does
	// not ensure by itself.
	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	electCtx, endElection := context.WithCancel(context.Background())
	workDone := make(chan struct{})
	var leading atomic.Bool
	go func() {
		<-sigCtx.Done()
		if leading.Load() {
			<-workDone
		}
		endElection()
	}()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: *leaseName, Namespace: *leaseNamespace},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	leaderelection.RunOrDie(electCtx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   *leaseDuration,
		RenewDeadline:   *renewDeadline,
		RetryPeriod:     *retryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				leading.Store(true)
				defer close(workDone)
				workCtx, cancel := context.WithCancel(ctx)
				defer cancel()
				stopOnSignal := context.AfterFunc(sigCtx, cancel)
				defer stopOnSignal()
				stamp(workCtx, cs, *namespace, writer)
			},
			OnStoppedLeading: func() { fmt.Println("stopped leading") },
		},
	})
}

// stamp reconciles until ctx ends.
func stamp(ctx context.Context, cs kubernetes.Interface, ns, writer string) {
	fmt.Println("leading")
	for ctx.Err() == nil {
		list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, cm := range list.Items {
				want := cm.Data["v"]
				if cm.Annotations["e2e.rein.dev/reconciled"] == want || ctx.Err() != nil {
					continue
				}
				patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
					"resourceVersion": cm.ResourceVersion,
					"annotations":     map[string]string{"e2e.rein.dev/reconciled": want, "e2e.rein.dev/writer": writer},
				}})
				_, _ = cs.CoreV1().ConfigMaps(ns).Patch(ctx, cm.Name, types.MergePatchType, patch, metav1.PatchOptions{})
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
