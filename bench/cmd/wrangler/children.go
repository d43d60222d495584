package main

import (
	"context"
	"fmt"
	"os"

	"github.com/rancher/wrangler/v3/pkg/apply"
	"github.com/rancher/wrangler/v3/pkg/generated/controllers/apps"
	appsv1ctl "github.com/rancher/wrangler/v3/pkg/generated/controllers/apps/v1"
	"github.com/rancher/wrangler/v3/pkg/generated/controllers/core"
	"github.com/rancher/wrangler/v3/pkg/leader"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/bench/internal/common"
)

// runChildren runs the children workload as a wrangler user writes it: the
// generated apps and core factories on one shared controller factory (as
// rancher's wrangler context does), an apply.Apply that reads the child
// kinds from their caches (WithCacheTypes), and the generated
// RegisterDeploymentGeneratingHandler with no condition and the default
// options. A last handler counts the first full pass.
func runChildren(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, f *common.Flags) {
	fail := func(what string, err error) {
		fmt.Fprintln(os.Stderr, what+":", err)
		os.Exit(2)
	}
	appsFactory, err := apps.NewFactoryFromConfigWithNamespace(cfg, f.Namespace)
	if err != nil {
		fail("apps factory", err)
	}
	coreFactory, err := core.NewFactoryFromConfigWithOptions(cfg, &core.FactoryOptions{
		Namespace: f.Namespace, SharedControllerFactory: appsFactory.ControllerFactory(),
	})
	if err != nil {
		fail("core factory", err)
	}
	applier, err := apply.NewForConfig(cfg)
	if err != nil {
		fail("apply", err)
	}
	corev1 := coreFactory.Core().V1()
	applier = applier.WithCacheTypes(corev1.ConfigMap(), corev1.Secret(), corev1.ServiceAccount())

	var lead common.Leadership
	deployments := appsFactory.Apps().V1().Deployment()
	appsv1ctl.RegisterDeploymentGeneratingHandler(ctx, deployments, applier, "", common.ChildrenSet,
		func(d *appsv1.Deployment, status appsv1.DeploymentStatus) ([]runtime.Object, appsv1.DeploymentStatus, error) {
			lead.Reconciling()
			return common.Children(d), status, nil
		}, nil)
	pass := common.NewPass(f.Parents)
	deployments.OnChange(ctx, "bench-pass", func(key string, d *appsv1.Deployment) (*appsv1.Deployment, error) {
		if d != nil {
			pass.Handled(key)
		}
		return d, nil
	})
	leader.RunOrDie(ctx, f.LeaseNamespace, f.LeaseName, client, func(ctx context.Context) {
		lead.Leading()
		// One Start: the core factory shares the apps factory's controller
		// and cache factories.
		if err := appsFactory.Start(ctx, f.Workers); err != nil {
			fail("start", err)
		}
	})
}
