package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// InstallWebhooks registers webhooks served outside any cluster, on this
// machine: the Validating- and MutatingWebhookConfigurations of the
// manifest files (as rein-gen's --webhook-dir writes them), and the
// webhook conversion of every installed CRD that has one (as rein-gen
// writes the CRDs of convertible kinds; install them first). Each
// webhook's Service becomes a URL: base (https://127.0.0.1:PORT, where
// the server listens) followed by the path the Service reference names,
// trusted with caPEM, the CA of the server's certificate. Configurations
// that exist are replaced.
func (e *Env) InstallWebhooks(ctx context.Context, base string, caPEM []byte, manifests ...string) error {
	if !strings.HasPrefix(base, "https://") || strings.Count(base, "/") != 2 {
		return fmt.Errorf("testenv: InstallWebhooks: base %q is not https://host:port", base)
	}
	if len(caPEM) == 0 {
		return errors.New("testenv: InstallWebhooks: no CA bundle: the apiserver would not trust the server")
	}
	cs, err := kubernetes.NewForConfig(e.Config())
	if err != nil {
		return err
	}
	urlOf := func(c admissionregistrationv1.WebhookClientConfig) admissionregistrationv1.WebhookClientConfig {
		url := base
		if c.Service != nil && c.Service.Path != nil {
			url += *c.Service.Path
		} else if c.URL != nil {
			return admissionregistrationv1.WebhookClientConfig{URL: c.URL, CABundle: caPEM}
		}
		return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
	}
	for _, file := range manifests {
		content, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("testenv: webhook manifest: %w", err)
		}
		for _, doc := range strings.Split(string(content), "\n---\n") {
			var meta struct{ Kind string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				return fmt.Errorf("testenv: %s: %w", file, err)
			}
			switch meta.Kind {
			case "":
				continue
			case "ValidatingWebhookConfiguration":
				err = replaceConfiguration(ctx, cs.AdmissionregistrationV1().ValidatingWebhookConfigurations(), file, meta.Kind, doc,
					func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
						for i := range c.Webhooks {
							c.Webhooks[i].ClientConfig = urlOf(c.Webhooks[i].ClientConfig)
						}
					})
			case "MutatingWebhookConfiguration":
				err = replaceConfiguration(ctx, cs.AdmissionregistrationV1().MutatingWebhookConfigurations(), file, meta.Kind, doc,
					func(c *admissionregistrationv1.MutatingWebhookConfiguration) {
						for i := range c.Webhooks {
							c.Webhooks[i].ClientConfig = urlOf(c.Webhooks[i].ClientConfig)
						}
					})
			default:
				return fmt.Errorf("testenv: %s holds a %s, not a webhook configuration", file, meta.Kind)
			}
			if err != nil {
				return err
			}
		}
	}

	ext, err := apiextensionsclient.NewForConfig(e.Config())
	if err != nil {
		return err
	}
	crds, err := ext.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range crds.Items {
		crd := &crds.Items[i]
		conv := crd.Spec.Conversion
		if conv == nil || conv.Strategy != apiextensionsv1.WebhookConverter || conv.Webhook == nil || conv.Webhook.ClientConfig == nil {
			continue
		}
		url := base
		switch cc := conv.Webhook.ClientConfig; {
		case cc.Service != nil && cc.Service.Path != nil:
			url += *cc.Service.Path
		case cc.URL != nil:
			url = *cc.URL
		}
		conv.Webhook.ClientConfig = &apiextensionsv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, crd, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("testenv: point the conversion of CRD %s at %s: %w", crd.Name, url, err)
		}
	}
	return nil
}

// configurationAPI is what replaceConfiguration needs of a webhook
// configuration client (validating or mutating).
type configurationAPI[P any] interface {
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Create(ctx context.Context, obj P, opts metav1.CreateOptions) (P, error)
}

// replaceConfiguration decodes doc (a kind from file), lets point aim its
// webhooks at the local server, and creates it in place of any
// configuration of that name.
func replaceConfiguration[T any, P interface {
	*T
	metav1.Object
}](ctx context.Context, api configurationAPI[P], file, kind, doc string, point func(P)) error {
	cfg := P(new(T))
	if err := yaml.UnmarshalStrict([]byte(doc), cfg); err != nil {
		return fmt.Errorf("testenv: %s: %w", file, err)
	}
	point(cfg)
	if err := api.Delete(ctx, cfg.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("testenv: replace %s %s: %w", kind, cfg.GetName(), err)
	}
	if _, err := api.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("testenv: %s: %w", file, err)
	}
	return nil
}
