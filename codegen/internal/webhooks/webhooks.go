package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-tools/pkg/webhook"
	"sigs.k8s.io/yaml"
)

// Config is one parsed +kubebuilder:webhook marker.
type Config = webhook.Config

// ConfigurationName is one parsed +kubebuilder:webhookconfiguration marker.
type ConfigurationName = webhook.WebhookConfig

// MarkerPrefix and ConfigurationMarkerPrefix begin the two markers.
const (
	MarkerPrefix              = "+kubebuilder:webhook:"
	ConfigurationMarkerPrefix = "+kubebuilder:webhookconfiguration:"
)

// The names controller-gen gives the configurations when no
// +kubebuilder:webhookconfiguration marker names them.
const (
	DefaultValidatingName = "validating-webhook-configuration"
	DefaultMutatingName   = "mutating-webhook-configuration"
)

// ParseMarker parses a +kubebuilder:webhook:… line.
func ParseMarker(text string) (Config, error) {
	v, err := webhook.ConfigDefinition.Parse(text)
	if err != nil {
		return Config{}, err
	}
	c, ok := v.(Config)
	if !ok {
		return Config{}, fmt.Errorf("controller-tools parsed %s into %T", text, v)
	}
	return c, nil
}

// ParseConfigurationMarker parses a +kubebuilder:webhookconfiguration:… line.
func ParseConfigurationMarker(text string) (ConfigurationName, error) {
	v, err := webhook.WebhookConfigDefinition.Parse(text)
	if err != nil {
		return ConfigurationName{}, err
	}
	c, ok := v.(ConfigurationName)
	if !ok {
		return ConfigurationName{}, fmt.Errorf("controller-tools parsed %s into %T", text, v)
	}
	return c, nil
}

// Service is the webhook Service the apiserver calls.
type Service struct {
	Namespace, Name string
}

// Options for Manifests.
type Options struct {
	// Service is used for each marker that names no serviceName or
	// serviceNamespace (and no url).
	Service Service
	// ValidatingName and MutatingName name the configurations; empty means
	// controller-gen's defaults.
	ValidatingName, MutatingName string
}

// Manifests returns the YAML documents of the configurations of markers:
// a ValidatingWebhookConfiguration if any marker is validating, a
// MutatingWebhookConfiguration if any is mutating, webhooks sorted by
// name. It returns nil for no markers. Errors name the marker's webhook.
func Manifests(markers []Config, o Options) ([]byte, error) {
	if len(markers) == 0 {
		return nil, nil
	}
	var validating []admissionregistrationv1.ValidatingWebhook
	var mutating []admissionregistrationv1.MutatingWebhook
	var errs []error
	for _, c := range markers {
		c := withService(c, o.Service)
		if err := Check(c); err != nil {
			errs = append(errs, fmt.Errorf("webhook %s: %w", c.Name, err))
			continue
		}
		if c.Mutating {
			w, err := c.ToMutatingWebhook()
			if err != nil {
				errs = append(errs, fmt.Errorf("webhook %s: %w", c.Name, err))
				continue
			}
			mutating = append(mutating, w)
		} else {
			w, err := c.ToValidatingWebhook()
			if err != nil {
				errs = append(errs, fmt.Errorf("webhook %s: %w", c.Name, err))
				continue
			}
			validating = append(validating, w)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var docs []any
	if len(validating) > 0 {
		slices.SortFunc(validating, func(a, b admissionregistrationv1.ValidatingWebhook) int { return strings.Compare(a.Name, b.Name) })
		cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{Webhooks: validating}
		cfg.APIVersion, cfg.Kind = "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"
		cfg.Name = orDefault(o.ValidatingName, DefaultValidatingName)
		docs = append(docs, cfg)
	}
	if len(mutating) > 0 {
		slices.SortFunc(mutating, func(a, b admissionregistrationv1.MutatingWebhook) int { return strings.Compare(a.Name, b.Name) })
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{Webhooks: mutating}
		cfg.APIVersion, cfg.Kind = "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"
		cfg.Name = orDefault(o.MutatingName, DefaultMutatingName)
		docs = append(docs, cfg)
	}
	var out bytes.Buffer
	for i, d := range docs {
		y, err := toYAML(d)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(y)
	}
	return out.Bytes(), nil
}

// Check makes controller-gen's checks of one webhook, which its Generator
// makes only while writing: a v1 configuration needs sideEffects None or
// NoneOnDryRun, admissionReviewVersions, and a timeout of 1 to 30 s.
func Check(c Config) error {
	switch strings.ToLower(c.SideEffects) {
	case "none", "noneondryrun":
	case "":
		return errors.New("sideEffects is missing: a v1 webhook configuration needs sideEffects=None (or NoneOnDryRun)")
	default:
		return fmt.Errorf("sideEffects=%s: a v1 webhook configuration allows only None or NoneOnDryRun", c.SideEffects)
	}
	if len(c.AdmissionReviewVersions) == 0 {
		return errors.New("admissionReviewVersions is missing: set admissionReviewVersions=v1")
	}
	if c.TimeoutSeconds != 0 && (c.TimeoutSeconds < 1 || c.TimeoutSeconds > 30) {
		return fmt.Errorf("timeoutSeconds=%d: it must be 1 to 30", c.TimeoutSeconds)
	}
	switch strings.ToLower(c.FailurePolicy) {
	case "fail", "ignore":
	default:
		return fmt.Errorf("failurePolicy=%s: use Fail (the request is refused while no replica answers) or Ignore", c.FailurePolicy)
	}
	return nil
}

func withService(c Config, s Service) Config {
	if c.URL != "" {
		return c
	}
	if c.ServiceName == "" && s.Name != "" {
		c.ServiceName = s.Name
	}
	if c.ServiceNamespace == "" && s.Namespace != "" {
		c.ServiceNamespace = s.Namespace
	}
	return c
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// toYAML renders obj as YAML without metadata.creationTimestamp (a zero
// time that only says the object was never stored).
func toYAML(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// Conversion is the stanza of a CRD whose versions convert through a
// webhook on service at path, with ConversionReview v1. The CA bundle is
// left out: cert-manager's CA injector or rein's leader writes it.
func Conversion(service Service, path string) *apiextensionsv1.CustomResourceConversion {
	return &apiextensionsv1.CustomResourceConversion{
		Strategy: apiextensionsv1.WebhookConverter,
		Webhook: &apiextensionsv1.WebhookConversion{
			ClientConfig: &apiextensionsv1.WebhookClientConfig{
				Service: &apiextensionsv1.ServiceReference{Namespace: service.Namespace, Name: service.Name, Path: &path},
			},
			ConversionReviewVersions: []string{"v1"},
		},
	}
}

// AddConversion returns the CRD manifest crd (one YAML document, as the
// CRD generator writes it) with spec.conversion set to conv. The rest of
// the document is kept byte for byte; the result is read back to check
// that it is the CRD with that stanza.
func AddConversion(crd []byte, conv *apiextensionsv1.CustomResourceConversion) ([]byte, error) {
	stanza, err := yaml.Marshal(map[string]any{"conversion": conv})
	if err != nil {
		return nil, err
	}
	var indented bytes.Buffer
	for _, line := range strings.SplitAfter(string(stanza), "\n") {
		if line != "" {
			indented.WriteString("  " + line)
		}
	}
	i := bytes.Index(crd, []byte("\nspec:\n"))
	if i < 0 {
		return nil, errors.New("the CRD manifest has no top-level spec")
	}
	at := i + len("\nspec:\n")
	out := slices.Concat(crd[:at], indented.Bytes(), crd[at:])

	var back apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(out, &back); err != nil {
		return nil, fmt.Errorf("the CRD with its conversion stanza does not read back: %w", err)
	}
	if back.Spec.Conversion == nil || back.Spec.Conversion.Strategy != conv.Strategy {
		return nil, errors.New("the CRD's conversion stanza did not land in spec")
	}
	return out, nil
}
