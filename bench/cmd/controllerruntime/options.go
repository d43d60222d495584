package main

import "sigs.k8s.io/controller-runtime/pkg/controller"

func ctrlOptions(workers int) controller.Options {
	return controller.Options{MaxConcurrentReconciles: workers}
}
