// Command rein is the benchmark controller built on rein: it marks every
// ConfigMap of a namespace with one annotation, leader-elected (--cache
// drop-data: with a cache transform that drops data; --cache metadata: on
// a metadata-only controller); with --workload pass, calls a handler that
// waits --delay and writes nothing on every ConfigMap, logging the changes
// it sees; or, with --workload children, keeps three children per Deployment with a
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/shard"
	"github.com/rein-k8s/rein/pkg/start"
)

func main() {
	var f common.Flags
	f.Bind(flag.CommandLine)
	var group start.Group
	bindGroupFlags(&group, flag.CommandLine)
	logLevel := flag.String("log-level", "warning", "log level (logrus: error, warning, info, debug); info logs a sharded replica's takeovers step by step")
	flag.Parse()
	level, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "--log-level=%q: want error, warning, info or debug\n", *logLevel)
		os.Exit(2)
	}
	// --shards and --lease-name are the shared flags (the fixed split and
	// the other programs read them too).
	group.LeaseName, group.Shards = f.LeaseName, f.Shards
	cfg := f.Config()

	opts := start.NewOptions()
	if f.Identity != "" {
		opts.IdentityBase = f.Identity
	}
	opts.Config = cfg
	opts.LeaseNamespace = f.LeaseNamespace
	opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = f.LeaseDuration, f.RenewDeadline, f.RetryPeriod
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	log := logrus.New()
	log.SetLevel(level)
	opts.Logger = logrus.NewEntry(log)
	reg := prometheus.NewRegistry()
	opts.Registry = reg

	var lead common.Leadership
	var partition engine.KeyGate
	if f.Partition != "" {
		i, n, err := common.ParseFraction("partition", f.Partition)
		if err == nil && f.Shards > 0 {
			err = fmt.Errorf("--partition=%s with --shards=%d: a fixed split has no protocol, give one or the other", f.Partition, f.Shards)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		partition = fixedSplit{index: i, of: n, ctx: context.Background()}
	}
	if f.Shards > 0 || partition != nil {
		// A sharded replica works as soon as it holds a shard: "leading"
		// is its start of work, logged when the workers start.
		lead.Leading()
	}

	// With --partition-caches each replica caches only the ConfigMaps of
	// the shards it holds (start.Group.PartitionShards: --shards, else 0).
	factoryOpts := framework.Options{Namespace: f.Namespace, Workers: f.Workers, Registerer: reg, Logger: opts.Logger, PartitionShards: group.PartitionShards()}
	if f.Cache == common.CacheDropData {
		factoryOpts.CachePerKind = map[schema.GroupVersionKind]framework.KindCache{configMaps.GVK: {Transform: dropData}}
	}
	factory, err := framework.NewFactory(cfg, clientgoscheme.Scheme, factoryOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "factory:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	if partition != nil {
		engine.OpsOf(factory).GateKeys(partition)
	}
	if f.Workload == common.WorkloadChildren {
		if err := registerChildren(ctx, factory, &f, &lead); err != nil {
			fmt.Fprintln(os.Stderr, "children:", err)
			os.Exit(2)
		}
	} else if f.Cache == common.CacheMetadata {
		registerMarks(ctx, generic.NewController[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList](factory, configMaps), &f, &lead)
	} else {
		registerMarks(ctx, generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, configMaps), &f, &lead)
	}
	// The driver times "synced" once start's readiness wait is over
	// (caches synced and every key queued) and "leading" as the term's
	// workers start, before any handler call (an OnLeader hook runs later,
	// in a goroutine of its own). A sharded replica logged "leading" above.
	sharded := f.Shards > 0 || partition != nil
	engine.OpsOf(factory).Observe(common.Synced, func() {
		if !sharded {
			lead.Leading()
		}
	})
	group.Factories = []start.Starter{factory}
	if err := start.Run(ctx, opts, group); err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(2)
	}
	select {}
}

// bindGroupFlags binds the flags of start.Group.BindFlags that the shared
// flags (common.Flags) do not have to fs: --partition-caches, and any the
// group gains later (the driver's partition scenario passes them on).
// --shards and --lease-name stay the shared ones, which main copies into
// g after the parse; --leader-elect-resource-name, another name for
// --lease-name, is left out.
func bindGroupFlags(g *start.Group, fs *flag.FlagSet) {
	own := flag.NewFlagSet("group", flag.ContinueOnError)
	g.BindFlags(own)
	own.VisitAll(func(gf *flag.Flag) {
		if fs.Lookup(gf.Name) == nil && gf.Name != "leader-elect-resource-name" {
			fs.Var(gf.Value, gf.Name, gf.Usage)
		}
	})
}

// fixedSplit admits the keys whose shard (shard.Of over
// common.PartitionShards) is index modulo of, for good: a split with no
// protocol, no handoff and no fence, the ceiling that sharding's
// protocol is measured against.
type fixedSplit struct {
	index, of int
	ctx       context.Context
}

func (s fixedSplit) Enter(key string) (context.Context, func(), bool) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, nil, false
	}
	return s.ctx, func() {}, shard.Of(namespace, name, common.PartitionShards)%s.of == s.index
}

var configMaps = generic.Resource{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true}

// dropData is the drop-data setting's cache transform: ConfigMaps enter
// the cache without data and binaryData (tombstones pass unchanged).
func dropData(obj any) (any, error) {
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		cm.Data, cm.BinaryData = nil, nil
	}
	return obj, nil
}

// registerMarks registers the handler that marks every ConfigMap (with
// --workload pass: that waits --delay and logs the changes it sees), on a
// controller of either form: typed (*corev1.ConfigMap), or metadata-only
// (*metav1.PartialObjectMetadata).
func registerMarks[O any, T interface {
	*O
	runtime.Object
	metav1.Object
}, TList runtime.Object](ctx context.Context, c generic.Controller[T, TList], f *common.Flags, lead *common.Leadership) {
	patch := common.Patch(f.Mark)
	pass := f.MarksPass()
	var changes common.Changes
	c.OnChange(ctx, "mark", func(ctx context.Context, key string, obj T) (T, error) {
		lead.Reconciling()
		if obj == nil {
			return nil, nil
		}
		pass.Handled(key)
		if f.Workload == common.WorkloadPass {
			changes.Saw(obj.GetName(), obj.GetAnnotations())
			return nil, common.Wait(ctx, f.Delay)
		}
		if obj.GetAnnotations()[common.Annotation] == f.Mark {
			return nil, nil
		}
		if err := common.Wait(ctx, f.Delay); err != nil {
			return nil, err
		}
		if f.Write == "update" {
			obj.SetAnnotations(common.Marked(obj.GetAnnotations(), f.Mark)) // obj is the engine's copy: the handler owns it
			return c.Update(ctx, obj)
		}
		// The same unconditional patch as the peers send (rein's Patch
		// would add the resourceVersion precondition).
		return c.PatchByName(ctx, obj.GetNamespace(), obj.GetName(), types.MergePatchType, patch)
	})
}
