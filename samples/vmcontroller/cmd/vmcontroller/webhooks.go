package main

import (
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/start"
	"github.com/rein-k8s/rein/pkg/webhook"
	"github.com/rein-k8s/rein/samples/vmcontroller/admission"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
	"github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/controllers/vm"
	vmwebhooks "github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/controllers/vm/v1alpha1"
)

// The objects deploy/ names: the webhook configurations (the
// +kubebuilder:webhookconfiguration markers) and the CRD whose conversion
// stanza calls the server.
const (
	webhookConfigurationName = "vmcontroller"
	crdName                  = "virtualmachines.vm.rein.dev"
)

type webhookFlags struct {
	addr, certDir, secret, host string
}

// serveWebhooks builds the webhook server, registers the VirtualMachine
// validator and defaulter and the v1alpha1/v1beta1 conversion on it with
// the generated helpers, and hands it to start, which serves it on every
// replica.
//
// cfg is the replica's own configuration, for the certificate's Secret,
// which any replica may make or renew; fenced is the factory's, whose
// writes end with this replica's term, for the leader's CA injection.
func serveWebhooks(cfg, fenced *rest.Config, opts *start.Options, group *start.Group, f webhookFlags, catalogue *hypervisor.Client, core corectrl.Interface) error {
	serverOpts := webhook.Options{Addr: f.addr, CertDir: f.certDir, Logger: opts.Logger} // start registers its metrics
	if f.secret != "" {
		namespace := os.Getenv("POD_NAMESPACE")
		if namespace == "" {
			return fmt.Errorf("--webhook-secret needs POD_NAMESPACE (the replica's namespace, from the downward API) to find Secret %s", f.secret)
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		certs, err := webhook.NewSecretCertificates(client, webhook.SecretCertificatesOptions{
			Namespace: namespace, Name: f.secret, Hosts: []string{f.host}, Logger: opts.Logger,
		})
		if err != nil {
			return err
		}
		serverOpts.Certificates = certs
		// The leader keeps the CA bundle in the configurations and the
		// CRD: a write, so behind the election like every other.
		group.OnLeader = append(group.OnLeader, certs.InjectOnLeader(fenced, webhook.CABundleTargets{
			ValidatingWebhookConfigurations: []string{webhookConfigurationName},
			MutatingWebhookConfigurations:   []string{webhookConfigurationName},
			CRDs:                            []string{crdName},
		}))
	}
	server, err := webhook.NewServer(serverOpts)
	if err != nil {
		return err
	}
	validator := &admission.Validator{Images: catalogue, Secrets: core.Secret().Cache()}
	if _, err := vmwebhooks.RegisterVirtualMachineValidator(server, validator.Validate); err != nil {
		return err
	}
	if _, err := vmwebhooks.RegisterVirtualMachineDefaulter(server, admission.Default); err != nil {
		return err
	}
	if _, err := vm.RegisterConversion(server); err != nil {
		return err
	}
	opts.Webhook = server
	return nil
}
