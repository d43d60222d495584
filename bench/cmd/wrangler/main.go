// Command wrangler is the benchmark controller built on rancher/wrangler v3:
// generated core controllers, leader.RunOrDie; with --workload children, a
// generating handler on Deployments with wrangler's apply (children.go). wrangler names the replica
// by os.Hostname(); with --identity the process sets its hostname to it,
// which needs its own UTS namespace (the driver starts it in one), as every
// pod has.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rancher/wrangler/v3/pkg/generated/controllers/core"
	"github.com/rancher/wrangler/v3/pkg/leader"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/bench/internal/common"
)

func main() {
	var f common.Flags
	f.Bind(flag.CommandLine)
	flag.Parse()
	cfg := f.Config()
	f.CacheOnly(common.CacheDefault)
	if f.Workload == common.WorkloadPass {
		fmt.Fprintln(os.Stderr, "--workload pass: this program has marks and children")
		os.Exit(2)
	}
	if f.Identity != "" {
		if err := syscall.Sethostname([]byte(f.Identity)); err != nil {
			fmt.Fprintln(os.Stderr, "sethostname (run in its own UTS namespace):", err)
			os.Exit(2)
		}
	}
	// wrangler reads its election timings from the environment only.
	_ = os.Setenv("CATTLE_ELECTION_LEASE_DURATION", f.LeaseDuration.String())
	_ = os.Setenv("CATTLE_ELECTION_RENEW_DEADLINE", f.RenewDeadline.String())
	_ = os.Setenv("CATTLE_ELECTION_RETRY_PERIOD", f.RetryPeriod.String())

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	if f.Workload == common.WorkloadChildren {
		runChildren(ctx, cfg, client, &f)
		return
	}
	factory, err := core.NewFactoryFromConfigWithNamespace(cfg, f.Namespace)
	if err != nil {
		fmt.Fprintln(os.Stderr, "factory:", err)
		os.Exit(2)
	}
	configMaps := factory.Core().V1().ConfigMap()
	var lead common.Leadership
	patch := common.Patch(f.Mark)
	pass := f.MarksPass()
	configMaps.OnChange(ctx, "mark", func(key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		lead.Reconciling()
		if cm == nil {
			return cm, nil
		}
		pass.Handled(key)
		if cm.Annotations[common.Annotation] == f.Mark {
			return cm, nil
		}
		if err := common.Wait(ctx, f.Delay); err != nil { // wrangler's handlers get no context: the process's
			return cm, err
		}
		if f.Write == "update" {
			cm = cm.DeepCopy() // wrangler hands out the cache's object
			cm.Annotations = common.Marked(cm.Annotations, f.Mark)
			return configMaps.Update(cm)
		}
		return configMaps.Patch(cm.Namespace, cm.Name, types.MergePatchType, patch)
	})
	leader.RunOrDie(ctx, f.LeaseNamespace, f.LeaseName, client, func(ctx context.Context) {
		lead.Leading()
		// wrangler starts its caches only once it leads; Start returns
		// after they synced and the controllers started.
		go common.AwaitSynced(ctx, configMaps.Informer().HasSynced)
		if err := factory.Start(ctx, f.Workers); err != nil {
			fmt.Fprintln(os.Stderr, "start:", err)
			os.Exit(1)
		}
	})
}
