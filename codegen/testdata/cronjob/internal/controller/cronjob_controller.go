/*
Copyright 2026 The rein authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/
// +kubebuilder:docs-gen:collapse=Apache License

// Package controller runs the Jobs of CronJobs.
package controller

import (
	"context"

	kbatch "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	jobsv1 "github.com/rein-k8s/rein/pkg/controllers/batch/v1"

	batchv1 "example.com/cronjob/api/v1"
)

// Reconciler keeps each CronJob's status in step with its Jobs.
type Reconciler struct {
	Jobs jobsv1.JobController
}

// +kubebuilder:rbac:groups=batch.tutorial.kubebuilder.io,resources=cronjobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch.tutorial.kubebuilder.io,resources=cronjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=batch.tutorial.kubebuilder.io,resources=cronjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs/status,verbs=get

// Reconcile lists the CronJob's active Jobs into its status.
func (r *Reconciler) Reconcile(ctx context.Context, key string, cronJob *batchv1.CronJob) (*batchv1.CronJob, error) {
	if cronJob == nil {
		return nil, nil
	}
	jobs, err := r.Jobs.Cache().List(cronJob.Namespace, labels.Everything())
	if err != nil {
		return cronJob, err
	}
	cronJob.Status.Active = nil
	for _, job := range jobs {
		if metav1.IsControlledBy(job, cronJob) && !finished(job) {
			cronJob.Status.Active = append(cronJob.Status.Active, jobRef(job))
		}
	}
	return cronJob, nil
}

func finished(job *kbatch.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == kbatch.JobComplete || c.Type == kbatch.JobFailed) && c.Status == "True" {
			return true
		}
	}
	return false
}

func jobRef(job *kbatch.Job) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: "batch/v1", Kind: "Job", Namespace: job.Namespace, Name: job.Name, UID: job.UID}
}
