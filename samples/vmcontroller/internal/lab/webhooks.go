package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/netfault"
)

// webhooks is the lab's stand-in for the webhook Service of deploy/: a
// balancer in front of every replica's webhook server, a serving
// certificate for 127.0.0.1 in a folder every replica reads
// (--webhook-cert-dir, as cert-manager mounts it), and the generated
// configurations and CRD conversion stanza pointed at the balancer.
type webhooks struct {
	balancer *netfault.Balancer
	certDir  string
	caPEM    []byte
}

// startWebhooks makes the certificate and the balancer, and registers the
// generated deploy/webhook/webhooks.yaml and the CRD's conversion with URL
// endpoints on the balancer: the apiserver calls whichever replica
// answers first.
func (l *Lab) startWebhooks(ctx context.Context) error {
	ca, err := certs.NewCA("vmcontroller-lab", 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	w := &webhooks{certDir: filepath.Join(l.Dir, "webhook-certs"), caPEM: ca.CertPEM}
	if err := os.MkdirAll(w.certDir, 0o700); err != nil {
		return err
	}
	for name, content := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(w.certDir, name), content, 0o600); err != nil {
			return err
		}
	}
	if w.balancer, err = netfault.NewBalancer(); err != nil {
		return err
	}
	l.webhooks = w
	base := "https://" + w.balancer.Addr()

	// The configurations as rein-gen generated them, with the URL of the
	// balancer instead of the Service of a cluster.
	manifest, err := os.ReadFile(filepath.Join(l.opts.RepoRoot, "samples/vmcontroller/deploy/webhook/webhooks.yaml"))
	if err != nil {
		return err
	}
	for _, doc := range strings.Split(string(manifest), "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return err
		}
		switch meta.Kind {
		case "ValidatingWebhookConfiguration":
			var cfg admissionregistrationv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &cfg); err != nil {
				return err
			}
			for i := range cfg.Webhooks {
				cfg.Webhooks[i].ClientConfig = w.clientConfig(base, cfg.Webhooks[i].ClientConfig)
			}
			if _, err := l.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &cfg, metav1.CreateOptions{}); err != nil {
				return err
			}
		case "MutatingWebhookConfiguration":
			var cfg admissionregistrationv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &cfg); err != nil {
				return err
			}
			for i := range cfg.Webhooks {
				cfg.Webhooks[i].ClientConfig = w.clientConfig(base, cfg.Webhooks[i].ClientConfig)
			}
			if _, err := l.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &cfg, metav1.CreateOptions{}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("webhooks.yaml holds a %q", meta.Kind)
		}
	}

	// The CRD's conversion stanza, as generated, names the Service: the
	// same path on the balancer.
	ext, err := apiextensionsclient.NewForConfig(l.Env.Config())
	if err != nil {
		return err
	}
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()
	crd, err := crds.Get(ctx, CRDName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	conv := crd.Spec.Conversion
	if conv == nil || conv.Strategy != apiextensionsv1.WebhookConverter || conv.Webhook == nil || conv.Webhook.ClientConfig == nil || conv.Webhook.ClientConfig.Service == nil {
		return fmt.Errorf("the CRD %s has no webhook conversion stanza naming a Service: run make generate", CRDName)
	}
	url := base + *conv.Webhook.ClientConfig.Service.Path
	conv.Webhook.ClientConfig = &apiextensionsv1.WebhookClientConfig{URL: &url, CABundle: w.caPEM}
	_, err = crds.Update(ctx, crd, metav1.UpdateOptions{})
	return err
}

// clientConfig is a generated webhook's Service endpoint moved to the
// balancer.
func (w *webhooks) clientConfig(base string, generated admissionregistrationv1.WebhookClientConfig) admissionregistrationv1.WebhookClientConfig {
	url := base
	if generated.Service != nil && generated.Service.Path != nil {
		url += *generated.Service.Path
	}
	return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.caPEM}
}

// replicaArgs are the webhook flags of a new replica, which joins the
// balancer's backends: a free loopback port and the certificate folder.
func (w *webhooks) replicaArgs() ([]string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	w.balancer.AddBackend(addr)
	return []string{"--webhook-bind-address", addr, "--webhook-cert-dir", w.certDir}, nil
}

func (w *webhooks) close() {
	if w != nil && w.balancer != nil {
		_ = w.balancer.Close()
	}
}
