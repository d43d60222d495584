package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/rbacneeds"

	"github.com/rein-k8s/rein/internal/certs"
)

// Keys of the certificate Secret. tls.crt and tls.key make it a
// kubernetes.io/tls Secret; ca.crt is the bundle the apiserver trusts:
// the signing CA, the next one once it is made, and the previous one until
// it expires.
const (
	secretCABundle   = "ca.crt"
	secretSigningCA  = "signing-ca.crt"
	secretCAKey      = "signing-ca.key"
	secretNextCA     = "next-ca.crt"
	secretNextCAKey  = "next-ca.key"
	secretPreviousCA = "previous-ca.crt"
)

// Defaults of SecretCertificatesOptions' validities.
const (
	defaultCAValidity          = 5 * 365 * 24 * time.Hour
	defaultCertificateValidity = 90 * 24 * time.Hour
)

// SecretCertificatesOptions configure SecretCertificates.
type SecretCertificatesOptions struct {
	// Namespace and Name locate the Secret every replica shares.
	Namespace, Name string
	// Hosts are the names the apiserver dials: for a Service webhook,
	// <service>.<namespace>.svc (and .svc.cluster.local if wanted); for a
	// URL, its host.
	Hosts []string
	// CAValidity and CertificateValidity are the lifetimes of the CA and
	// of each serving certificate (defaults: 5 years, 90 days). A serving
	// certificate is renewed when a third of its life is left; the CA
	// likewise, and the previous CA stays in the bundle until it expires.
	CAValidity, CertificateValidity time.Duration
	// Logger is where it logs; nil means logrus's standard logger.
	Logger *logrus.Entry
}

// SecretCertificates serves a webhook's certificate from a Secret that
// every replica shares, for clusters without cert-manager: the first
// replica to start creates a CA and a serving certificate in it; whichever
// replica sees the serving certificate (or the CA) near its end renews it,
// by an update conditional on the Secret's resourceVersion (two replicas
// renewing at once make one renewal, the other reads it); every replica
// watches the Secret and serves its current pair. The leader writes the CA
// bundle into the webhook configurations and CRDs (InjectCABundle).
//
// The replicas need get, list, watch, create and update on the Secret.
type SecretCertificates struct {
	client kubernetes.Interface
	opts   SecretCertificatesOptions
	log    *logrus.Entry
	now    func() time.Time

	mu       sync.Mutex
	current  *tls.Certificate
	bundle   []byte
	renewAt  time.Time     // when the pair served now should be renewed
	changed  chan struct{} // closed and replaced when the bundle changes
	loaded   chan struct{} // closed once a pair is served
	loadOnce sync.Once
	started  atomic.Bool // Start has been called
	firstErr error       // why Start has no first pair yet

	// loadWarnEvery is how long InjectOnLeader waits for the first pair
	// before it says what it waits for (tests shorten it).
	loadWarnEvery time.Duration
}

// NewSecretCertificates checks opts; Start does the work.
func NewSecretCertificates(client kubernetes.Interface, opts SecretCertificatesOptions) (*SecretCertificates, error) {
	if client == nil {
		return nil, errors.New("webhook: NewSecretCertificates needs a client")
	}
	if opts.Namespace == "" || opts.Name == "" {
		return nil, errors.New("webhook: SecretCertificatesOptions needs the Secret's Namespace and Name")
	}
	if len(opts.Hosts) == 0 {
		return nil, errors.New("webhook: SecretCertificatesOptions.Hosts is empty: name the host the apiserver dials, e.g. my-webhook.my-namespace.svc")
	}
	if opts.CAValidity == 0 {
		opts.CAValidity = defaultCAValidity
	}
	if opts.CertificateValidity == 0 {
		opts.CertificateValidity = defaultCertificateValidity
	}
	if opts.CertificateValidity > opts.CAValidity {
		return nil, fmt.Errorf("webhook: CertificateValidity %v is longer than CAValidity %v", opts.CertificateValidity, opts.CAValidity)
	}
	log := opts.Logger
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	// Every replica reads and watches the Secret (by name: a field
	// selector), the first creates it (a create names no object to
	// authorize), any renews it.
	why := "the webhook certificate Secret " + opts.Namespace + "/" + opts.Name
	secret := rbacneeds.Rule{Namespace: opts.Namespace, Resource: "secrets"}
	rbacneeds.Process.Add(why, secret, "create")
	secret.Name = opts.Name
	rbacneeds.Process.Add(why, secret, "get", "list", "watch", "update")
	return &SecretCertificates{
		client: client, opts: opts, now: time.Now,
		log:     log.WithField("secret", opts.Namespace+"/"+opts.Name),
		changed: make(chan struct{}), loaded: make(chan struct{}),
		loadWarnEvery: 30 * time.Second,
	}, nil
}

// GetCertificate hands out the pair the Secret holds. SecretCertificates
// is a CertificateSource: pass it as Options.Certificates, and the server
// runs Start.
func (c *SecretCertificates) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		if c.firstErr != nil {
			return nil, fmt.Errorf("webhook: no serving certificate yet from Secret %s/%s: %w", c.opts.Namespace, c.opts.Name, c.firstErr)
		}
		return nil, fmt.Errorf("webhook: no serving certificate yet from Secret %s/%s", c.opts.Namespace, c.opts.Name)
	}
	return c.current, nil
}

// caBundle is the PEM bundle the apiserver must trust (nil before the
// Secret is read), and a channel closed when it changes.
func (c *SecretCertificates) caBundle() ([]byte, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bundle, c.changed
}

// Start makes sure the Secret holds a valid CA and serving certificate
// (creating or renewing them), then follows it until ctx ends: it serves
// each pair the Secret gets, and renews the pair when its time comes. It
// returns nil when ctx ends.
//
// Until the first pair is in hand, a Secret this replica may not read or
// write (its RBAC not granted yet, or the apiserver out of reach) is
// asked again, with backoff up to 30s: ending the replica here would end
// it before pkg/start's permission check reports the rule it lacks. The
// error is logged once per kind, and the server is not ready meanwhile,
// saying why (GetCertificate's error).
func (c *SecretCertificates) Start(ctx context.Context) error {
	c.started.Store(true)
	last := ""
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		err := c.ensure(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		c.firstErr = err
		c.mu.Unlock()
		if err.Error() != last {
			c.log.WithError(err).Errorf("webhook: no serving certificate yet; asking again, then every %v at most", 30*time.Second)
			last = err.Error()
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	// Through the typed client (not its RESTClient), which any
	// kubernetes.Interface has.
	secrets := c.client.CoreV1().Secrets(c.opts.Namespace)
	byName := fields.OneTermEqualSelector("metadata.name", c.opts.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return secrets.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedInformer(lw, &corev1.Secret{}, 0)
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.take(obj) },
		UpdateFunc: func(_, obj any) { c.take(obj) },
	}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { inf.RunWithContext(ctx) })
	for {
		c.mu.Lock()
		wait := c.renewAt.Sub(c.now())
		c.mu.Unlock()
		// Replicas renew at slightly different moments: one of them
		// renews, the others read its renewal.
		wait += time.Duration(rand.Int64N(int64(min(time.Minute, c.opts.CertificateValidity/50)) + 1))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-c.bundleChange():
			t.Stop()
			continue // a renewal by another replica: a new renewAt
		}
		if err := c.ensure(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.WithError(err).Error("webhook: renewing the serving certificate failed; retrying in a minute")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Minute):
			}
		}
	}
}

func (c *SecretCertificates) bundleChange() <-chan struct{} {
	_, ch := c.caBundle()
	return ch
}

// ensure reads the Secret and creates or renews what it lacks, once: a
// conflict means another replica wrote it meanwhile, and its write is
// read and taken.
func (c *SecretCertificates) ensure(ctx context.Context) error {
	secrets := c.client.CoreV1().Secrets(c.opts.Namespace)
	for attempt := 0; ; attempt++ {
		s, err := secrets.Get(ctx, c.opts.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.opts.Namespace, Name: c.opts.Name}, Type: corev1.SecretTypeTLS}
		case err != nil:
			return c.named("read", err)
		}
		next, changed, err := c.renewed(s)
		if err != nil {
			return err
		}
		if !changed {
			c.take(s)
			return nil
		}
		if s.ResourceVersion == "" {
			_, err = secrets.Create(ctx, next, metav1.CreateOptions{})
		} else {
			_, err = secrets.Update(ctx, next, metav1.UpdateOptions{})
		}
		if (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) && attempt < 5 {
			continue // another replica was first: read what it wrote
		}
		if err != nil {
			return c.named("write", err)
		}
		c.log.Info("webhook: serving certificate issued")
	}
}

func (c *SecretCertificates) named(verb string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("webhook: cannot %s Secret %s/%s: %w (grant this replica's service account get, list, watch, create and update on secrets in %s)",
			verb, c.opts.Namespace, c.opts.Name, err, c.opts.Namespace)
	}
	return fmt.Errorf("webhook: %s Secret %s/%s: %w", verb, c.opts.Namespace, c.opts.Name, err)
}

// renewed returns s with a valid CA and serving certificate, and whether
// anything had to change.
//
// A CA is replaced in two steps, so that no apiserver is ever shown a
// certificate it does not trust yet: when a third of the signing CA's
// life is left, the next CA is made and added to the bundle (the leader
// writes the bundle into the configurations; serving goes on with the
// current CA); when a sixth is left, the next CA becomes the signing CA and
// a serving certificate of its own is issued. The old CA stays in the
// bundle until it expires.
func (c *SecretCertificates) renewed(s *corev1.Secret) (*corev1.Secret, bool, error) {
	now := c.now()
	out := s.DeepCopy()
	if out.Data == nil {
		out.Data = map[string][]byte{}
	}
	d := out.Data
	changed := false
	ca, err := certs.ParseCA(d[secretSigningCA], d[secretCAKey])
	if err != nil {
		// None yet, or unreadable: start over with a CA of its own.
		if ca, err = certs.NewCA(c.caName(), c.opts.CAValidity, now); err != nil {
			return nil, false, err
		}
		d[secretSigningCA], d[secretCAKey] = ca.CertPEM, ca.KeyPEM
		delete(d, secretNextCA)
		delete(d, secretNextCAKey)
		changed = true
	}
	next, nextErr := certs.ParseCA(d[secretNextCA], d[secretNextCAKey])
	switch {
	case nextErr != nil && lifeLeft(ca.Cert, now) <= 1.0/3:
		if next, err = certs.NewCA(c.caName(), c.opts.CAValidity, now); err != nil {
			return nil, false, err
		}
		d[secretNextCA], d[secretNextCAKey] = next.CertPEM, next.KeyPEM
		c.log.Info("webhook: the CA has a third of its life left; the next CA joins the bundle")
		changed = true
	case nextErr == nil && lifeLeft(ca.Cert, now) <= 1.0/6:
		d[secretSigningCA], d[secretCAKey] = next.CertPEM, next.KeyPEM
		d[secretPreviousCA] = ca.CertPEM
		delete(d, secretNextCA)
		delete(d, secretNextCAKey)
		ca = next
		c.log.Info("webhook: the next CA signs from now on; the previous stays in the bundle until it expires")
		changed = true
	}
	if prev := d[secretPreviousCA]; prev != nil {
		if p, err := parseCert(prev); err != nil || !now.Before(p.NotAfter) {
			delete(d, secretPreviousCA)
			changed = true
		}
	}
	// The bundle: every CA whose certificates may be served.
	bundle := append([]byte{}, d[secretSigningCA]...)
	bundle = append(bundle, d[secretNextCA]...)
	bundle = append(bundle, d[secretPreviousCA]...)
	if !bytes.Equal(bundle, d[secretCABundle]) {
		d[secretCABundle] = bundle
		changed = true
	}
	pair, err := tls.X509KeyPair(d[corev1.TLSCertKey], d[corev1.TLSPrivateKeyKey])
	if err != nil || lifeLeft(pair.Leaf, now) <= 1.0/3 || pair.Leaf.CheckSignatureFrom(ca.Cert) != nil || !coversHosts(pair.Leaf, c.opts.Hosts) {
		certPEM, keyPEM, err := ca.Issue(c.opts.Hosts, c.opts.CertificateValidity, now)
		if err != nil {
			return nil, false, err
		}
		d[corev1.TLSCertKey], d[corev1.TLSPrivateKeyKey] = certPEM, keyPEM
		changed = true
	}
	if out.Type == "" {
		out.Type = corev1.SecretTypeTLS
	}
	return out, changed, nil
}

func (c *SecretCertificates) caName() string {
	return "rein webhook CA " + c.opts.Namespace + "/" + c.opts.Name
}

// lifeLeft is the share of cert's life still ahead at now (0 when over).
func lifeLeft(cert *x509.Certificate, now time.Time) float64 {
	life := cert.NotAfter.Sub(cert.NotBefore)
	if life <= 0 {
		return 0
	}
	return max(0, float64(cert.NotAfter.Sub(now))/float64(life))
}

func parseCert(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// take serves the pair of the Secret obj.
func (c *SecretCertificates) take(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		c.log.WithError(err).Warn("webhook: the Secret's certificate does not load; serving the previous one")
		return
	}
	bundle := s.Data[secretCABundle]
	// The next look: when the serving certificate, or the signing CA,
	// reaches its next step.
	renewAt := stepAt(pair.Leaf, 1.0/3)
	if ca, err := parseCert(s.Data[secretSigningCA]); err == nil {
		step := 1.0 / 3
		if s.Data[secretNextCA] != nil {
			step = 1.0 / 6
		}
		renewAt = minTime(renewAt, stepAt(ca, step))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.renewAt = renewAt
	// The bundle can change while the serving certificate does not (the
	// next CA joining it): each is taken on its own.
	if !bytes.Equal(c.bundle, bundle) {
		c.bundle = bundle
		close(c.changed)
		c.changed = make(chan struct{})
	}
	if c.current != nil && bytes.Equal(c.current.Certificate[0], pair.Certificate[0]) {
		return
	}
	c.current = &pair
	c.loadOnce.Do(func() { close(c.loaded) })
	c.log.WithField("notAfter", pair.Leaf.NotAfter.UTC().Format(time.RFC3339)).Info("webhook: serving the Secret's certificate")
}

// stepAt is when share of cert's life is left.
func stepAt(cert *x509.Certificate, share float64) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Add(-time.Duration(float64(life) * share))
}

func coversHosts(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
