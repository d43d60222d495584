package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Endpoint is how the apiserver reaches a Server: through a Service in
// the cluster (every replica behind it), or at a URL (a server outside the
// cluster, or a test's on 127.0.0.1). Exactly one is set.
type Endpoint struct {
	// Service is the webhook Service; its Path is ignored (each webhook
	// has its own). Port nil means 443.
	Service *admissionregistrationv1.ServiceReference
	// URL is the server's base URL, https://host:port, without a path.
	URL string
}

func (ep Endpoint) check() error {
	switch {
	case ep.Service != nil && ep.URL != "":
		return errors.New("webhook: Endpoint has both a Service and a URL: choose one")
	case ep.Service != nil:
		if ep.Service.Namespace == "" || ep.Service.Name == "" {
			return errors.New("webhook: Endpoint.Service needs a namespace and a name")
		}
	case ep.URL != "":
		u, err := url.Parse(ep.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("webhook: Endpoint.URL %q: want https://host:port, without a path", ep.URL)
		}
	default:
		return errors.New("webhook: Endpoint has neither a Service nor a URL")
	}
	return nil
}

// clientConfig is the apiserver's way to path on ep.
func (ep Endpoint) clientConfig(path string, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: caBundle}
	if ep.Service != nil {
		svc := *ep.Service
		svc.Path = &path
		cc.Service = &svc
		return cc
	}
	u := strings.TrimSuffix(ep.URL, "/") + path
	cc.URL = &u
	return cc
}

// webhookName is the name of hook's entry in a configuration: the
// apiserver wants a fully qualified name (three labels at least), unique
// in the configuration.
func webhookName(h Hook, configuration string) string {
	verb := "validate"
	if h.Mutating {
		verb = "mutate"
	}
	group := h.GVK.Group
	if group == "" {
		group = "core"
	}
	return fmt.Sprintf("%s-%s-%s.%s.%s", verb, h.GVK.Version, strings.ToLower(h.GVK.Kind), group, configuration)
}

// Configurations returns the webhook configurations, both named name,
// that send the apiserver's requests for hooks' kinds to ep: one
// ValidatingWebhookConfiguration for the validating hooks and one
// MutatingWebhookConfiguration for the defaulting ones (nil when there are
// none of that sort). caBundle is the PEM of the CA that signed the
// server's certificate. Each webhook: its kind's resource and version
// (matchPolicy Equivalent: requests for the kind's other versions are
// converted to it), its operations, failurePolicy Fail, sideEffects None,
// admission review v1, its timeout.
func Configurations(name string, hooks []Hook, ep Endpoint, caBundle []byte) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration, error) {
	if err := ep.check(); err != nil {
		return nil, nil, err
	}
	if name == "" {
		return nil, nil, errors.New("webhook: Configurations needs a name")
	}
	var validating *admissionregistrationv1.ValidatingWebhookConfiguration
	var mutating *admissionregistrationv1.MutatingWebhookConfiguration
	for _, h := range hooks {
		timeout := int32(h.Timeout.Seconds())
		rule := admissionregistrationv1.RuleWithOperations{
			Operations: h.Operations,
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{h.GVK.Group},
				APIVersions: []string{h.GVK.Version},
				Resources:   []string{h.Resource},
			},
		}
		fail := admissionregistrationv1.Fail
		equivalent := admissionregistrationv1.Equivalent
		none := admissionregistrationv1.SideEffectClassNone
		if h.Mutating {
			if mutating == nil {
				mutating = &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
				mutating.APIVersion, mutating.Kind = admissionregistrationv1.SchemeGroupVersion.String(), "MutatingWebhookConfiguration"
			}
			never := admissionregistrationv1.NeverReinvocationPolicy
			mutating.Webhooks = append(mutating.Webhooks, admissionregistrationv1.MutatingWebhook{
				Name: webhookName(h, name), ClientConfig: ep.clientConfig(h.Path, caBundle), Rules: []admissionregistrationv1.RuleWithOperations{rule},
				FailurePolicy: &fail, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
				AdmissionReviewVersions: []string{"v1"}, ReinvocationPolicy: &never,
			})
			continue
		}
		if validating == nil {
			validating = &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
			validating.APIVersion, validating.Kind = admissionregistrationv1.SchemeGroupVersion.String(), "ValidatingWebhookConfiguration"
		}
		validating.Webhooks = append(validating.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name: webhookName(h, name), ClientConfig: ep.clientConfig(h.Path, caBundle), Rules: []admissionregistrationv1.RuleWithOperations{rule},
			FailurePolicy: &fail, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return validating, mutating, nil
}

// CRDConversion is the conversion stanza of a CRD whose kind h converts:
// the Webhook strategy, calling h's path on ep, ConversionReview v1.
func CRDConversion(h ConversionHook, ep Endpoint, caBundle []byte) (*apiextensionsv1.CustomResourceConversion, error) {
	if err := ep.check(); err != nil {
		return nil, err
	}
	cc := &apiextensionsv1.WebhookClientConfig{CABundle: caBundle}
	if ep.Service != nil {
		path := h.Path
		cc.Service = &apiextensionsv1.ServiceReference{Namespace: ep.Service.Namespace, Name: ep.Service.Name, Path: &path, Port: ep.Service.Port}
	} else {
		u := strings.TrimSuffix(ep.URL, "/") + h.Path
		cc.URL = &u
	}
	return &apiextensionsv1.CustomResourceConversion{
		Strategy: apiextensionsv1.WebhookConverter,
		Webhook:  &apiextensionsv1.WebhookConversion{ClientConfig: cc, ConversionReviewVersions: []string{"v1"}},
	}, nil
}
