// Command replica is the small controller rein's multi-process tests run
// several copies of: it is built only on rein's public API (framework,
// generic, start) and writes one annotation on each ConfigMap of one
// namespace, copying the ConfigMap's data["v"], so a test can tell which
// objects are reconciled. Each process sends its writes with the user agent
// "rein-e2e/<POD_NAME>/<pid>", so the apiserver's audit log tells which
// process wrote what and when.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/start"
	"github.com/rein-k8s/rein/pkg/webhook"
)

// Annotations the handler writes.
const (
	ReconciledAnnotation = "e2e.rein.dev/reconciled"
	WriterAnnotation     = "e2e.rein.dev/writer"
)

func main() {
	opts := start.NewOptions()
	fs := flag.NewFlagSet("replica", flag.ContinueOnError)
	namespace := fs.String("namespace", "", "namespace whose ConfigMaps are reconciled")
	workers := fs.Int("workers", 4, "workers")
	delay := fs.Duration("handler-delay", 0, "how long the handler waits before it writes (a simulated call to a slow external system)")
	mark := fs.String("mark", "value", `what the handler keeps current: "value" (the annotation copies data["v"]) or "writer" (each process re-marks every object once: benchmarks use it to give a new leader work on every object)`)
	webhookAddr := fs.String("webhook-bind-address", "", "serve a validating webhook for ConfigMaps here (it refuses data[\"v\"] = \"refused\"); empty: none")
	webhookCertDir := fs.String("webhook-cert-dir", "", "tls.crt and tls.key of the webhook server")
	external := fs.String("external-url", "", "before each write, POST the object's uid, key and this writer here (a stand-in for a call to an external system); empty: none")
	opts.BindFlags(fs)
	var group start.Group // --leader-elect-resource-name, --shards, --partition-caches
	group.BindFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	log := logrus.New()
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000"})
	// --kubeconfig is required: a test's replica must never fall back to
	// the developer's own cluster.
	if opts.Kubeconfig == "" || *namespace == "" {
		log.Error("--kubeconfig and --namespace are required")
		os.Exit(2)
	}
	cfg, err := opts.LoadConfig() // sets opts.Config
	if err != nil {
		log.WithError(err).Error("kubeconfig")
		os.Exit(2)
	}
	writer := fmt.Sprintf("rein-e2e/%s/%d", opts.IdentityBase, os.Getpid())
	cfg.UserAgent = writer
	opts.Logger = logrus.NewEntry(log).WithField("replica", opts.IdentityBase)
	reg := prometheus.NewRegistry()
	opts.Registry = reg

	factory, err := framework.NewFactory(cfg, clientgoscheme.Scheme, framework.Options{
		Namespace: *namespace, Workers: *workers, Registerer: reg, Logger: opts.Logger,
		PartitionShards: group.PartitionShards(), // --partition-caches
	})
	if err != nil {
		log.WithError(err).Error("factory")
		os.Exit(2)
	}
	configMaps := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, generic.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true,
	})
	ctx := context.Background()
	var firstReconcile sync.Once
	configMaps.OnChange(ctx, "stamp", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		firstReconcile.Do(func() {
			opts.Logger.WithField("at", time.Now().Format(time.RFC3339Nano)).Info("first reconcile")
		})
		if cm == nil {
			return nil, nil
		}
		want := cm.Data["v"]
		done := cm.Annotations[ReconciledAnnotation] == want
		if *mark == "writer" {
			done = cm.Annotations[WriterAnnotation] == writer
		}
		if _, ok := cm.Annotations[ReconciledAnnotation]; ok && done {
			return nil, nil
		}
		if *delay > 0 {
			t := time.NewTimer(*delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		if *external != "" {
			// The external system hears of the object first, as the
			// sample's hypervisor does before the status write.
			if err := callExternal(ctx, *external, cm, writer); err != nil {
				return nil, err
			}
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"annotations": map[string]string{ReconciledAnnotation: want, WriterAnnotation: writer},
		}})
		if err != nil {
			return nil, err
		}
		// Patch is conditional on cm's resourceVersion: a write based on an
		// old read is refused rather than applied late.
		return configMaps.Patch(ctx, cm, types.MergePatchType, patch)
	})
	if *webhookAddr != "" {
		server, err := webhook.NewServer(webhook.Options{Addr: *webhookAddr, CertDir: *webhookCertDir, Logger: opts.Logger})
		if err != nil {
			log.WithError(err).Error("webhook")
			os.Exit(2)
		}
		_, err = webhook.Validating(server, clientgoscheme.Scheme, func(ctx context.Context, old, cm *corev1.ConfigMap) (webhook.Warnings, error) {
			if cm != nil && cm.Data["v"] == "refused" {
				return nil, fmt.Errorf("refused by %s", opts.IdentityBase)
			}
			return nil, nil
		})
		if err != nil {
			log.WithError(err).Error("webhook")
			os.Exit(2)
		}
		opts.Webhook = server
	}
	group.Factories = []start.Starter{factory}
	if err := start.Run(ctx, opts, group); err != nil {
		log.WithError(err).Error("cannot start")
		os.Exit(2)
	}
	select {}
}

// callExternal posts what the handler is about to act on to url, through
// fence.Transport: the call carries the hold's token and is refused once
// the hold has ended.
func callExternal(ctx context.Context, url string, cm *corev1.ConfigMap, writer string) error {
	body, err := json.Marshal(map[string]string{"uid": string(cm.UID), "key": cm.Namespace + "/" + cm.Name, "writer": writer})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := externalClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("external call: %s", resp.Status)
	}
	return nil
}

var externalClient = &http.Client{Transport: fence.Transport(http.DefaultTransport)}
