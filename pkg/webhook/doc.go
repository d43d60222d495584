// Package webhook serves a controller's admission and conversion webhooks
// over HTTPS, on every replica.
//
// Admission and conversion only read: they need no lease, and the
// apiserver may call any replica behind the webhook's Service, so every
// replica serves them from its start, leader or not. A replica that is
// killed takes its requests in flight with it; the others go on answering.
//
// A Server listens on one address with one serving certificate, from a
// folder of tls.crt and tls.key (a mounted kubernetes.io/tls Secret, as
// cert-manager writes it; loaded again when the files change) or from a
// CertificateSource such as SecretCertificates (a CA and certificate the
// replicas share in a Secret, renewed before they expire, the CA bundle
// written into the configurations by the leader: InjectOnLeader).
// Webhooks are registered on it per kind:
//
//   - Validating(s, scheme, fn): fn(ctx, old, obj) judges a create (old
//     nil), an update or a delete (obj nil) and returns warnings and an
//     error that denies the request with its message;
//   - Mutating(s, scheme, fn): fn(ctx, obj) sets defaults on obj in place;
//     the server answers with the JSON patch from obj as it came to obj as
//     fn left it;
//   - Conversion(s, scheme): converts the objects of every multi-version
//     kind whose versions convert through a Hub version (hub and spoke).
//
// Each is served at a path derived from its kind (Hook.Path), which the
// webhook configuration or the CRD's conversion stanza names.
//
// What goes wrong is answered, not dropped: a handler that panics denies
// the request with a message (the panic and its stack are logged and
// counted in rein_webhook_requests_total{result="panic"}) and the server
// goes on; a handler still running when its webhook's timeout nears
// (WithTimeout, the configuration's timeoutSeconds) is answered with a
// timeout denial before the apiserver gives up; a request for a kind or
// version a webhook does not serve is refused with a message naming both.
package webhook
