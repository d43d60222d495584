package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/rein-k8s/rein/internal/rbacneeds"
)

// CABundleTargets name the objects that carry a webhook server's CA
// bundle: webhook configurations (every webhook in them) and CRDs (their
// conversion webhook).
type CABundleTargets struct {
	ValidatingWebhookConfigurations []string
	MutatingWebhookConfigurations   []string
	CRDs                            []string
}

// InjectCABundle writes bundle into the targets where it differs. Pass
// the rest.Config of the leader's fenced clients
// (framework.Factory.RESTConfig), so that a deposed leader's late
// write is refused like its handlers'. A target that does not exist is an
// error naming it (its manifest was not applied).
func InjectCABundle(ctx context.Context, cfg *rest.Config, bundle []byte, t CABundleTargets) error {
	if len(bundle) == 0 {
		return errors.New("webhook: InjectCABundle: the bundle is empty")
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	admission := cs.AdmissionregistrationV1()
	errs := injectInto(ctx, admission.ValidatingWebhookConfigurations(), "ValidatingWebhookConfiguration", t.ValidatingWebhookConfigurations,
		func(c *admissionregistrationv1.ValidatingWebhookConfiguration) (bool, error) {
			return setBundles(len(c.Webhooks), func(i int) *[]byte { return &c.Webhooks[i].ClientConfig.CABundle }, bundle), nil
		})
	errs = append(errs, injectInto(ctx, admission.MutatingWebhookConfigurations(), "MutatingWebhookConfiguration", t.MutatingWebhookConfigurations,
		func(c *admissionregistrationv1.MutatingWebhookConfiguration) (bool, error) {
			return setBundles(len(c.Webhooks), func(i int) *[]byte { return &c.Webhooks[i].ClientConfig.CABundle }, bundle), nil
		})...)
	if len(t.CRDs) > 0 {
		ext, err := apiextensionsclient.NewForConfig(cfg)
		if err != nil {
			return err
		}
		errs = append(errs, injectInto(ctx, ext.ApiextensionsV1().CustomResourceDefinitions(), "CustomResourceDefinition", t.CRDs,
			func(crd *apiextensionsv1.CustomResourceDefinition) (bool, error) {
				conv := crd.Spec.Conversion
				if conv == nil || conv.Webhook == nil || conv.Webhook.ClientConfig == nil {
					return false, fmt.Errorf("it has no conversion webhook (spec.conversion.strategy Webhook with a clientConfig): regenerate its manifest")
				}
				return setBundles(1, func(int) *[]byte { return &conv.Webhook.ClientConfig.CABundle }, bundle), nil
			})...)
	}
	return errors.Join(errs...)
}

// needCABundleRBAC records the reads and writes of InjectCABundle on
// t's objects, by name.
func needCABundleRBAC(t CABundleTargets) {
	const why = "the leader's CA bundle injection (webhook.InjectOnLeader)"
	for _, target := range []struct {
		group, resource string
		names           []string
	}{
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", t.ValidatingWebhookConfigurations},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", t.MutatingWebhookConfigurations},
		{"apiextensions.k8s.io", "customresourcedefinitions", t.CRDs},
	} {
		for _, name := range target.names {
			rbacneeds.Process.Add(why, rbacneeds.Rule{Group: target.group, Resource: target.resource, Name: name}, "get", "update")
		}
	}
}

// getUpdater is what injectInto needs of a typed client of one kind.
type getUpdater[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// injectInto reads each named object of kind, lets set put the bundle in
// it (set reports whether anything changed), and updates it when it did,
// retrying conflicts with a fresh read. It returns one error per failed
// name.
func injectInto[T any](ctx context.Context, api getUpdater[T], kind string, names []string, set func(T) (bool, error)) []error {
	var errs []error
	for _, name := range names {
		errs = append(errs, named(kind, name, retry.RetryOnConflict(retry.DefaultRetry, func() error {
			obj, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if changed, err := set(obj); err != nil || !changed {
				return err
			}
			_, err = api.Update(ctx, obj, metav1.UpdateOptions{})
			return err
		})))
	}
	return errs
}

// setBundles sets the n bundles at(i) to bundle and reports whether any
// differed.
func setBundles(n int, at func(int) *[]byte, bundle []byte) bool {
	changed := false
	for i := range n {
		if b := at(i); !bytes.Equal(*b, bundle) {
			*b, changed = bundle, true
		}
	}
	return changed
}

func named(kind, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("webhook: %s %s not found: apply the webhook manifests before the replicas (rein-gen writes them)", kind, name)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("webhook: %s %s: %w (grant the controller get and update on it)", kind, name, err)
	}
	return fmt.Errorf("webhook: %s %s: %w", kind, name, err)
}

// InjectOnLeader returns a hook for start.Group.OnLeader: while this
// replica leads, it keeps the CA bundle of c in the targets, writing it at
// once and again whenever the bundle changes (a CA rotation). Failures are
// logged and retried with backoff, up to a minute apart, until the term
// ends. It starts once c serves its first pair; until then it says every
// 30 s what it waits for (c is started by the webhook server whose
// Options.Certificates it is).
func (c *SecretCertificates) InjectOnLeader(cfg *rest.Config, t CABundleTargets) func(context.Context) error {
	needCABundleRBAC(t)
	return func(ctx context.Context) error {
		if !c.awaitLoaded(ctx) {
			return nil
		}
		delay := time.Second
		for {
			bundle, changed := c.caBundle()
			err := InjectCABundle(ctx, cfg, bundle, t)
			if ctx.Err() != nil {
				return nil
			}
			wait := (<-chan time.Time)(nil)
			if err != nil {
				c.log.WithError(err).Errorf("webhook: writing the CA bundle failed; retrying in %v", delay)
				wait = time.After(delay)
				delay = min(2*delay, time.Minute)
			} else {
				delay = time.Second
				c.log.Info("webhook: CA bundle written into the webhook configurations and CRDs")
			}
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			case <-wait:
			}
		}
	}
}

// awaitLoaded waits until c serves its first pair (true) or ctx ends
// (false), and says what it waits for every loadWarnEvery: a
// SecretCertificates that no server runs would otherwise leave the CA
// bundle unwritten without a word.
func (c *SecretCertificates) awaitLoaded(ctx context.Context) bool {
	tick := time.NewTicker(c.loadWarnEvery)
	defer tick.Stop()
	waited := time.Duration(0)
	for {
		select {
		case <-c.loaded:
			return true
		case <-ctx.Done():
			return false
		case <-tick.C:
			waited += c.loadWarnEvery
			if c.started.Load() {
				c.log.Warnf("webhook: CA bundle not written yet: no serving certificate from the Secret after %v (see the errors above: RBAC on the Secret, an unreachable apiserver)", waited)
			} else {
				c.log.Warnf("webhook: CA bundle not written yet: this SecretCertificates has not been started after %v; pass it as the webhook server's Options.Certificates (the server runs it)", waited)
			}
		}
	}
}
