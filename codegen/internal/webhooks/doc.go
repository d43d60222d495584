// Package webhooks turns kubebuilder's webhook markers into manifests, for
// rein-gen:
//
//   - ParseMarker and ParseConfigurationMarker read +kubebuilder:webhook:…
//     and +kubebuilder:webhookconfiguration:… lines with controller-tools'
//     own marker definitions (sigs.k8s.io/controller-tools/pkg/webhook), so
//     that a marker written for controller-gen means the same here;
//   - Manifests renders the ValidatingWebhookConfiguration and
//     MutatingWebhookConfiguration of a set of markers, each webhook built by
//     controller-tools' Config.ToValidatingWebhook/ToMutatingWebhook, after
//     the checks controller-gen makes (sideEffects None or NoneOnDryRun,
//     timeoutSeconds 1 to 30, admissionReviewVersions given);
//   - AddConversion gives a CRD manifest the webhook conversion stanza.
//
// # Why not controller-tools' webhook Generator
//
// The Generator loads the packages again (a second `go list` and parse of
// the API, about a second) only to find markers rein-gen has already read,
// and it names the webhooks' Service "webhook-service" in namespace
// "system" unless every marker says otherwise: rein-gen fills in the
// Service the user gave it (--webhook-service) first. The marker parsing
// and the construction of each webhook, where the semantics live, are
// controller-tools' own.
package webhooks
