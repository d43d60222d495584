package main

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/pkg/apply"
	appsv1ctl "github.com/rein-k8s/rein/pkg/controllers/apps/v1"
	corev1ctl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
)

// serviceAccounts names ServiceAccount for the engine (rein generates no
// controller for it).
var serviceAccounts = generic.Resource{
	GVK: corev1.SchemeGroupVersion.WithKind("ServiceAccount"), Plural: "serviceaccounts", Namespaced: true,
}

// registerChildren registers the generating handler of the children
// workload, as a rein user writes it: a set that declares the child kinds,
// and the generated Register<Kind>GeneratingHandler. The children live in
// their parent's namespace and carry an owner reference, so the garbage
// collector deletes them with it: KeepChildren leaves out the finalizer
// (and its write per parent) that only children out of an owner
// reference's reach need. wrangler's generating handler relies on the
// garbage collector the same way. A last handler counts the first full
// pass.
func registerChildren(ctx context.Context, factory *framework.Factory, f *common.Flags, lead *common.Leadership) error {
	applier, err := apply.New(factory)
	if err != nil {
		return err
	}
	set, err := applier.Set(common.ChildrenSet, []generic.Resource{corev1ctl.ConfigMapResource, corev1ctl.SecretResource, serviceAccounts})
	if err != nil {
		return err
	}
	deployments := appsv1ctl.New(factory).Deployment()
	appsv1ctl.RegisterDeploymentGeneratingHandler(ctx, deployments, set, common.ChildrenSet,
		func(ctx context.Context, d *appsv1.Deployment, status appsv1.DeploymentStatus) ([]runtime.Object, appsv1.DeploymentStatus, error) {
			lead.Reconciling()
			return common.Children(d), status, nil
		}, generic.GeneratingOptions[appsv1.DeploymentStatus]{KeepChildren: true})
	pass := common.NewPass(f.Parents)
	deployments.OnChange(ctx, "bench-pass", func(ctx context.Context, key string, d *appsv1.Deployment) (*appsv1.Deployment, error) {
		if d != nil {
			pass.Handled(key)
		}
		return d, nil
	})
	return nil
}
