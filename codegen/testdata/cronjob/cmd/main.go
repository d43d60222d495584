// Command cronjob runs the CronJob controller; rein-gen's output for a
// group named batch is imported under one alias per clash, no more.
package main

import (
	"context"
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/rein-k8s/rein/pkg/controllers/batch"
	"github.com/rein-k8s/rein/pkg/start"

	batchv1 "example.com/cronjob/api/v1"
	"example.com/cronjob/generated/clientset/versioned"
	cronjobs "example.com/cronjob/generated/controllers/batch"
	"example.com/cronjob/generated/informers/externalversions"
	listers "example.com/cronjob/generated/listers/batch/v1"
	"example.com/cronjob/internal/controller"
)

func main() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// rein's controllers: CronJobs from the generated factory, Jobs from
	// rein's built-in batch controllers.
	f := cronjobs.NewFactoryFromConfigOrDie(cfg)
	jobs, err := batch.NewFactoryFromConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r := &controller.Reconciler{Jobs: jobs.Batch().V1().Job()}
	f.Batch().V1().CronJob().OnChange(context.Background(), "active", r.Reconcile)

	// code-generator's clientset, informers and listers, in the group's
	// folders.
	informers := externalversions.NewSharedInformerFactory(versioned.NewForConfigOrDie(cfg), 0)
	var lister listers.CronJobLister = informers.Batch().V1().CronJobs().Lister()
	_ = lister
	var _ *batchv1.CronJob

	opts := start.NewOptions()
	opts.Config = cfg
	if err := start.Run(context.Background(), opts, start.Group{LeaseName: "cronjob", Factories: []start.Starter{f, jobs}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	select {}
}
