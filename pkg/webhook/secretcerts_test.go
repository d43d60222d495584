package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"

	"github.com/rein-k8s/rein/internal/testkit"
)

// verifies says whether the serving certificate of s verifies against
// bundle for host.
func verifies(t *testing.T, s *corev1.Secret, bundle []byte, host string) error {
	t.Helper()
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("bundle holds no certificate")
	}
	_, err = pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: pair.Leaf.NotBefore.Add(2 * time.Hour)})
	return err
}

// TestSecretCertificateLifecycle walks a Secret through the life of its
// certificates with a clock: issued; the serving certificate renewed from
// the same CA; the next CA added to the bundle while the current one still
// signs; the next CA promoted; the previous dropped once expired. At every
// step the certificate served verifies against the bundle published at
// the step before: the apiserver, which learns a bundle only after it is
// written, is never shown a certificate it does not trust.
func TestSecretCertificateLifecycle(t *testing.T) {
	const host = "hooks.ns.svc"
	c, start, clock := certificatesAt(t, host)

	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "certs"}}
	step := func(at time.Duration, want string) *corev1.Secret {
		t.Helper()
		*clock = start.Add(at)
		next, changed, err := c.renewed(s)
		if err != nil {
			t.Fatal(err)
		}
		if !changed && want != "nothing" {
			t.Fatalf("at %v: nothing changed, want %s", at, want)
		}
		if changed && want == "nothing" {
			t.Fatalf("at %v: something changed, want nothing", at)
		}
		if s.Data != nil {
			if err := verifies(t, next, s.Data[secretCABundle], host); err != nil {
				t.Errorf("at %v (%s): the new certificate does not verify against the bundle published before: %v", at, want, err)
			}
		}
		if err := verifies(t, next, next.Data[secretCABundle], host); err != nil {
			t.Errorf("at %v (%s): the certificate does not verify against its own bundle: %v", at, want, err)
		}
		return next
	}
	bundleCAs := func(s *corev1.Secret) int { return strings.Count(string(s.Data[secretCABundle]), "BEGIN CERTIFICATE") }

	s = step(0, "first issue")
	if s.Type != corev1.SecretTypeTLS || bundleCAs(s) != 1 {
		t.Fatalf("first issue: type %q, %d CAs in the bundle", s.Type, bundleCAs(s))
	}
	firstCA := string(s.Data[secretSigningCA])
	s = step(time.Hour, "nothing")

	cert := string(s.Data[corev1.TLSCertKey])
	s = step(41*time.Hour, "serving certificate renewed (a third of 60h left)")
	if string(s.Data[corev1.TLSCertKey]) == cert || string(s.Data[secretSigningCA]) != firstCA {
		t.Fatal("the serving certificate was not renewed from the same CA")
	}

	s = step(401*time.Hour, "next CA joins the bundle")
	if bundleCAs(s) != 2 || string(s.Data[secretSigningCA]) != firstCA || s.Data[secretNextCA] == nil {
		t.Fatalf("at 401h: %d CAs in the bundle, signing CA changed %v, want the next CA added and the first still signing", bundleCAs(s), string(s.Data[secretSigningCA]) != firstCA)
	}
	nextCA := string(s.Data[secretNextCA])

	s = step(501*time.Hour, "next CA promoted")
	if string(s.Data[secretSigningCA]) != nextCA || string(s.Data[secretPreviousCA]) != firstCA || bundleCAs(s) != 2 {
		t.Fatalf("at 501h: the next CA does not sign, or the previous left the bundle (%d CAs)", bundleCAs(s))
	}

	s = step(601*time.Hour, "previous CA expired and dropped")
	if s.Data[secretPreviousCA] != nil || bundleCAs(s) != 1 {
		t.Fatalf("at 601h: %d CAs in the bundle, want the expired one gone", bundleCAs(s))
	}
}

// TestSecretCertificatesOnAPIServer: replicas starting at once make one
// Secret and serve the same certificate; the leader's InjectCABundle
// makes the apiserver trust it; serving certificates renewed every few
// seconds while the apiserver calls the webhook lose no request.
func TestSecretCertificatesOnAPIServer(t *testing.T) {
	e := controlPlane.Get(t)
	cs, err := kubernetes.NewForConfig(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-", Labels: map[string]string{"webhook-test": t.Name()}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := SecretCertificatesOptions{Namespace: ns.Name, Name: "webhook-certs", Hosts: []string{"127.0.0.1"}, CertificateValidity: 9 * time.Second, CAValidity: time.Hour, Logger: testLog()}
	var replicas []*SecretCertificates
	for i := range 3 {
		c, err := NewSecretCertificates(cs, opts)
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, c)
		if i == 0 {
			continue // the webhook server below runs its Start
		}
		wg.Go(func() {
			if err := c.Start(ctx); err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	// The first replica's is served by a webhook server, which runs it;
	// registered without a bundle, the leader's injection below makes it
	// trusted.
	s, err := NewServer(Options{Addr: "127.0.0.1:0", Certificates: replicas[0], Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err == nil {
		t.Error("Ready before Serve: nil, want an error")
	}
	hook, err := Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := s.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	for _, c := range replicas {
		select {
		case <-c.loaded:
		case <-time.After(30 * time.Second):
			t.Fatal("a replica served no certificate 30s after it started")
		}
	}
	certOf := func(c *SecretCertificates) []byte {
		cert, err := c.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return cert.Certificate[0]
	}
	// They converge on one Secret's pair (one may have read a pair that a
	// renewal of another replaced a moment later).
	eventuallyTrue(t, "the replicas serve one certificate", func() bool {
		return string(certOf(replicas[0])) == string(certOf(replicas[1])) && string(certOf(replicas[1])) == string(certOf(replicas[2]))
	})

	if err := s.Ready(); err != nil {
		t.Errorf("Ready with the Secret's certificate: %v", err)
	}
	name := "rein-" + strings.ToLower(t.Name())
	validating, _, err := Configurations(name, []Hook{hook}, Endpoint{URL: "https://" + s.Addr()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	validating.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-test": t.Name()}}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, validating, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
	}()
	leaderCtx, endTerm := context.WithCancel(ctx)
	defer endTerm()
	wg.Go(func() {
		_ = replicas[1].InjectOnLeader(e.Config(), CABundleTargets{ValidatingWebhookConfigurations: []string{name}})(leaderCtx)
	})
	eventuallyTrue(t, "the bundle is in the configuration", func() bool {
		c, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		bundle, _ := replicas[1].caBundle()
		return err == nil && string(c.Webhooks[0].ClientConfig.CABundle) == string(bundle)
	})

	// Requests through the apiserver while the serving certificate is
	// renewed (every 6s) at least twice.
	first := certOf(replicas[0])
	renewals := 0
	var sent, failed atomic.Int64
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; renewals < 2; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d renewals in 60s, want 2 (certificates of 9s)", renewals)
		}
		sent.Add(1)
		_, err := cs.CoreV1().ConfigMaps(ns.Name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + strconv.Itoa(i)}}, metav1.CreateOptions{})
		if err != nil {
			failed.Add(1)
			t.Errorf("create %d: %v", i, err)
		}
		if now := certOf(replicas[0]); string(now) != string(first) {
			renewals++
			first = now
		}
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d admission requests failed across %d renewals", failed.Load(), sent.Load(), renewals)
	}
	t.Logf("%d creates through the webhook across %d certificate renewals, %d failed", sent.Load(), renewals, failed.Load())
	var rules admissionregistrationv1.RuleWithOperations = validating.Webhooks[0].Rules[0]
	if rules.Resources[0] != "configmaps" {
		t.Errorf("rule resources %v", rules.Resources)
	}
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, 20*time.Millisecond, what, cond)
}

// certificatesAt returns SecretCertificates for host in Secret ns/certs,
// whose clock reads what clock points at, from start on.
func certificatesAt(t *testing.T, host string) (c *SecretCertificates, start time.Time, clock *time.Time) {
	t.Helper()
	c, err := NewSecretCertificates(fake.NewClientset(), SecretCertificatesOptions{
		Namespace: "ns", Name: "certs", Hosts: []string{host},
		CAValidity: 600 * time.Hour, CertificateValidity: 60 * time.Hour, Logger: testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	c.now = func() time.Time { return now }
	return c, start, &now
}

// TestBundleChangeAloneIsTaken: when the next CA joins the bundle and the
// serving certificate stays (the first step of a CA rotation), the bundle
// is taken and its change announced, so that the leader writes it before
// the second step.
func TestBundleChangeAloneIsTaken(t *testing.T) {
	c, start, clock := certificatesAt(t, "h.ns.svc")
	s0, _, err := c.renewed(&corev1.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	// Renew the serving certificate close to the CA's first step, so that
	// the step leaves it alone.
	*clock = start.Add(399 * time.Hour)
	s0, _, err = c.renewed(s0)
	if err != nil {
		t.Fatal(err)
	}
	c.take(s0)
	bundle0, changed := c.caBundle()
	*clock = start.Add(401 * time.Hour)
	s1, moved, err := c.renewed(s0)
	if err != nil || !moved {
		t.Fatalf("the first step of the CA rotation: changed %v, %v", moved, err)
	}
	if string(s1.Data[corev1.TLSCertKey]) != string(s0.Data[corev1.TLSCertKey]) {
		t.Fatal("the serving certificate changed at the first step; the test needs it unchanged")
	}
	c.take(s1)
	select {
	case <-changed:
	default:
		t.Fatal("the bundle's change was not announced")
	}
	if bundle1, _ := c.caBundle(); string(bundle1) == string(bundle0) || !strings.Contains(string(bundle1), string(s1.Data[secretNextCA])) {
		t.Fatal("the bundle taken is not the one with the next CA")
	}
}

// warnings is a logrus hook that hands each warning to a channel.
type warnings chan string

func (w warnings) Levels() []logrus.Level { return []logrus.Level{logrus.WarnLevel} }
func (w warnings) Fire(e *logrus.Entry) error {
	select {
	case w <- e.Message:
	default: // the test reads the first ones; later repeats are dropped
	}
	return nil
}

// TestInjectOnLeaderSaysWhatItWaitsFor: a SecretCertificates that no
// server runs never serves a pair, so the leader's hook would wait
// forever without a word; it names the mistake instead, and a started one
// that cannot read its Secret points at the errors logged before. Either
// way the hook ends with its term.
func TestInjectOnLeaderSaysWhatItWaitsFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start bool
		want  string
	}{
		{"never started", false, "has not been started after 20ms; pass it as the webhook server's Options.Certificates"},
		{"started, Secret forbidden", true, "no serving certificate from the Secret after 20ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			client.PrependReactor("*", "secrets", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "certs", errors.New("RBAC"))
			})
			log := logrus.New()
			log.SetOutput(io.Discard)
			seen := make(warnings, 4)
			log.AddHook(seen)
			c, err := NewSecretCertificates(client, SecretCertificatesOptions{
				Namespace: "ns", Name: "certs", Hosts: []string{"hooks.ns.svc"}, Logger: logrus.NewEntry(log),
			})
			if err != nil {
				t.Fatal(err)
			}
			c.loadWarnEvery = 20 * time.Millisecond
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			started := make(chan error, 1)
			if tc.start {
				// Start keeps asking while the Secret is forbidden: the
				// replica lives on to report the missing rule.
				go func() { started <- c.Start(ctx) }()
			} else {
				started <- nil
			}
			done := make(chan error, 1)
			go func() { done <- c.InjectOnLeader(&rest.Config{Host: "https://127.0.0.1:1"}, CABundleTargets{})(ctx) }()
			if msg := <-seen; !strings.Contains(msg, tc.want) {
				t.Errorf("warning %q, want it to contain %q", msg, tc.want)
			}
			if msg := <-seen; !strings.Contains(msg, "after 40ms") {
				t.Errorf("second warning %q, want the time waited (40ms)", msg)
			}
			if tc.start {
				select {
				case err := <-started:
					t.Fatalf("Start returned %v while the Secret is forbidden; want it to keep asking", err)
				default:
				}
				if _, err := c.GetCertificate(nil); err == nil || !strings.Contains(err.Error(), "forbidden") {
					t.Errorf("GetCertificate (the server's readiness) says %v; want it to name the forbidden Secret", err)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("hook at the end of its term: %v, want nil", err)
			}
			if err := <-started; err != nil {
				t.Errorf("Start at the end of ctx: %v, want nil", err)
			}
		})
	}
}

// TestSecretCertificatesWaitForTheirRBAC: a replica whose Secret is
// forbidden keeps asking, not serving and saying why; once the rule is
// granted it issues and serves a pair without a restart.
func TestSecretCertificatesWaitForTheirRBAC(t *testing.T) {
	client := fake.NewClientset()
	var granted atomic.Bool
	asked := make(chan struct{}, 1)
	client.PrependReactor("*", "secrets", func(clienttesting.Action) (bool, runtime.Object, error) {
		if granted.Load() {
			return false, nil, nil // on to the object tracker
		}
		select {
		case asked <- struct{}{}:
		default:
		}
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "certs", errors.New("RBAC"))
	})
	log, _ := testkit.Logger(t, "certificates")
	c, err := NewSecretCertificates(client, SecretCertificatesOptions{Namespace: "ns", Name: "certs", Hosts: []string{"hooks.ns.svc"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan error, 1)
	go func() { started <- c.Start(ctx) }()
	testkit.Receive(t, asked, 10*time.Second, "Start asks for the Secret")
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, "GetCertificate names the forbidden Secret", func() bool {
		_, err := c.GetCertificate(nil)
		return err != nil && strings.Contains(err.Error(), "forbidden")
	})
	granted.Store(true)
	// The next attempt, at most a backoff step (2s) later, issues a pair.
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, "a serving certificate once the Secret is granted", func() bool {
		_, err := c.GetCertificate(nil)
		return err == nil
	})
	if _, err := client.CoreV1().Secrets("ns").Get(ctx, "certs", metav1.GetOptions{}); err != nil {
		t.Errorf("the Secret after the grant: %v", err)
	}
	cancel()
	if err := testkit.Receive(t, started, 10*time.Second, "Start returns at the end of ctx"); err != nil {
		t.Errorf("Start: %v, want nil", err)
	}
}
