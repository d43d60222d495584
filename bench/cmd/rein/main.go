// Command rein is the benchmark controller built on rein: it marks every
// ConfigMap of a namespace with one annotation, leader-elected; or, with
// --workload children, keeps three children per Deployment with a
// generating handler (children.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/start"
)

func main() {
	var f common.Flags
	f.Bind(flag.CommandLine)
	flag.Parse()
	cfg := f.Config()

	opts := start.NewOptions()
	if f.Identity != "" {
		opts.IdentityBase = f.Identity
	}
	opts.Config = cfg
	opts.LeaseName, opts.LeaseNamespace = f.LeaseName, f.LeaseNamespace
	opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = f.LeaseDuration, f.RenewDeadline, f.RetryPeriod
	opts.Shards = f.Shards
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	opts.Logger = logrus.NewEntry(log)
	reg := prometheus.NewRegistry()
	opts.Registry = reg

	var lead common.Leadership
	if f.Shards > 0 {
		// A sharded replica works as soon as it holds a shard: "leading"
		// is its start of work, logged when the workers start.
		lead.Leading()
	} else {
		opts.OnLeader = append(opts.OnLeader, func(ctx context.Context) error { lead.Leading(); return nil })
	}

	factory, err := framework.NewFactory(cfg, clientgoscheme.Scheme, framework.Options{
		Namespace: f.Namespace, Workers: f.Workers, Registerer: reg, Logger: opts.Logger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "factory:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	if f.Workload == common.WorkloadChildren {
		if err := registerChildren(ctx, factory, &f, &lead); err != nil {
			fmt.Fprintln(os.Stderr, "children:", err)
			os.Exit(2)
		}
	} else {
		registerMarks(ctx, factory, &f, &lead)
	}
	if err := start.Run(ctx, opts, factory); err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(2)
	}
	select {}
}

// registerMarks registers the handler that marks every ConfigMap.
func registerMarks(ctx context.Context, factory *framework.Factory, f *common.Flags, lead *common.Leadership) {
	configMaps := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, framework.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true,
	})
	patch := common.Patch(f.Mark)
	configMaps.OnChange(ctx, "mark", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		lead.Reconciling()
		if cm == nil || cm.Annotations[common.Annotation] == f.Mark {
			return nil, nil
		}
		if err := common.Wait(ctx, f.Delay); err != nil {
			return nil, err
		}
		if f.Write == "update" {
			cm.Annotations = common.Marked(cm.Annotations, f.Mark) // cm is the engine's copy: the handler owns it
			return configMaps.Update(ctx, cm)
		}
		// The same unconditional patch as the peers send (rein's Patch
		// would add the resourceVersion precondition).
		return configMaps.PatchByName(ctx, cm.Namespace, cm.Name, types.MergePatchType, patch)
	})
}
