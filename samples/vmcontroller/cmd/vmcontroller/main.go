// Command vmcontroller is rein's sample controller: it turns VirtualMachine
// resources (vm.rein.dev/v1alpha1) into VMs on a hypervisor, and runs as
// several replicas of which one, the Lease holder, works.
//
//	vmcontroller --hypervisor-url http://hypervisor:8090 [--kubeconfig FILE] [webhook flags] [start flags]
//
// With --webhook-bind-address every replica also serves the
// VirtualMachine admission webhooks (package admission) and the
// conversion between v1alpha1 and v1beta1, with a serving certificate
// from --webhook-cert-dir (cert-manager) or from the Secret
// --webhook-secret that the replicas share (self-managed; the leader then
// writes the CA bundle into the webhook configurations and the CRD).
//
// Without --kubeconfig it uses $KUBECONFIG, ~/.kube/config or the in-cluster
// configuration (start.Options.LoadConfig). /metrics and the probes listen
// on loopback unless --metrics-bind-address and --health-probe-bind-address
// say otherwise, as deploy/deployment.yaml does.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/pkg/apply"
	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/start"
	"github.com/rein-k8s/rein/samples/vmcontroller/controller"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
	"github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/controllers/vm"
)

func main() {
	log := logrus.New()
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000"})

	opts := start.NewOptions()
	group := start.Group{LeaseName: "vmcontroller"} // --leader-elect-resource-name, --shards, --partition-caches
	fs := flag.NewFlagSet("vmcontroller", flag.ContinueOnError)
	hypervisorURL := fs.String("hypervisor-url", "", "base URL of the hypervisor API, e.g. http://hypervisor:8090 (required)")
	namespace := fs.String("namespace", "", "watch VirtualMachines in this namespace only (default: all)")
	workers := fs.Int("workers", 8, "VirtualMachines reconciled at once")
	poll := fs.Duration("poll-interval", 500*time.Millisecond, "how soon a VM in transition is looked at again")
	consoleURL := fs.String("console-base-url", "", "the hypervisor's URL as users reach it, for the console address in each VM's <name>-console ConfigMap (default: --hypervisor-url)")
	webhookAddr := fs.String("webhook-bind-address", "", "serve the admission and conversion webhooks here, e.g. :9443; empty: none")
	webhookCertDir := fs.String("webhook-cert-dir", "", "folder of the webhook server's tls.crt and tls.key (a mounted cert-manager Secret)")
	webhookSecret := fs.String("webhook-secret", "", "instead of --webhook-cert-dir: the Secret, in the replica's namespace, where the replicas keep a CA and serving certificate they make themselves")
	webhookHost := fs.String("webhook-host", "vmcontroller-webhook.vm-system.svc", "with --webhook-secret: the host name the apiserver dials (the webhook Service's DNS name)")
	opts.BindFlags(fs)
	group.BindFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *hypervisorURL == "" {
		fmt.Fprintln(os.Stderr, "vmcontroller: --hypervisor-url is required (e.g. http://hypervisor.vm-system.svc:8090)")
		os.Exit(2)
	}
	if *webhookAddr != "" && (*webhookCertDir == "") == (*webhookSecret == "") {
		fmt.Fprintln(os.Stderr, "vmcontroller: --webhook-bind-address needs exactly one of --webhook-cert-dir (certificates mounted by cert-manager) and --webhook-secret (certificates kept by the replicas)")
		os.Exit(2)
	}
	if *consoleURL == "" {
		*consoleURL = *hypervisorURL
	}
	cfg, err := opts.LoadConfig() // --kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmcontroller:", err)
		os.Exit(2)
	}
	logger := logrus.NewEntry(log).WithField("replica", opts.IdentityBase)
	opts.Logger = logger // start's registry serves the engine's, the election's, Go and process metrics

	factory, err := vm.NewFactoryFromConfigWithOptions(cfg, framework.Options{
		Namespace: *namespace, Workers: *workers, Logger: logger,
		PartitionShards: group.PartitionShards(), // --partition-caches
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmcontroller:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	// Events are writes too: their client passes the same fence.
	events, err := kubernetes.NewForConfig(factory.RESTConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmcontroller:", err)
		os.Exit(2)
	}
	recorder := framework.NewEventRecorder(ctx, events, factory.Scheme(), "vmcontroller")
	// Hypervisor calls are leader-only work outside the apiserver: the
	// guard refuses them once this replica's term has ended and sends the
	// term's fencing token, which the hypervisor checks per VM.
	hv := hypervisor.NewClient(*hypervisorURL, &http.Client{Timeout: 10 * time.Second, Transport: fence.Transport(nil)})
	// A VM's children (console ConfigMap, cloud-init Secret) are applied
	// through the same fenced clients, and read from the same factory's
	// caches, as everything else.
	applier, err := apply.New(factory.Factory)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmcontroller:", err)
		os.Exit(2)
	}
	core := corectrl.New(factory.Factory)
	if _, err := controller.Register(ctx, controller.Deps{
		VMs: factory.Vm().V1alpha1().VirtualMachine(), Secrets: core.Secret(), ConfigMaps: core.ConfigMap(),
		Applier: applier, Hypervisor: hv, Recorder: recorder,
	}, controller.Options{PollInterval: *poll, ConsoleBaseURL: *consoleURL}); err != nil {
		fmt.Fprintln(os.Stderr, "vmcontroller:", err)
		os.Exit(2)
	}

	if *webhookAddr != "" {
		if err := serveWebhooks(cfg, factory.RESTConfig(), &opts, &group, webhookFlags{addr: *webhookAddr, certDir: *webhookCertDir, secret: *webhookSecret, host: *webhookHost},
			hypervisor.NewClient(*hypervisorURL, &http.Client{Timeout: 5 * time.Second}), core); err != nil {
			fmt.Fprintln(os.Stderr, "vmcontroller:", err)
			os.Exit(2)
		}
	}

	group.Factories = []start.Starter{factory}
	if err := start.Run(ctx, opts, group); err != nil {
		fmt.Fprintln(os.Stderr, "vmcontroller:", err)
		os.Exit(2)
	}
	select {} // the process ends from start: after draining and releasing the lease
}
