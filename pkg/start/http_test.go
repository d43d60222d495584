package start_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/start"
)

// serviceAccountToken creates the ServiceAccount name in ns and returns a
// token of it from the TokenRequest API.
func serviceAccountToken(t *testing.T, admin kubernetes.Interface, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// allowMetrics lets the ServiceAccount name of ns get /metrics: the
// ClusterRole a Prometheus is given, bound to it.
func allowMetrics(t *testing.T, admin kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx := context.Background()
	role := ns + "-metrics-reader"
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{}) })
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), role, metav1.DeleteOptions{})
	})
}

// scrape GETs url with token as bearer token ("" for none) through client.
func scrape(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// writeServingCert writes a certificate of ca for 127.0.0.1 into dir, each
// file renamed into place, and returns its serial number.
func writeServingCert(t *testing.T, ca *certs.CA, dir string) *big.Int {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf.SerialNumber
}

// TestSecureMetrics: with MetricsSecure, /metrics is HTTPS with the
// certificate of MetricsCertDir (a renewed one served without a restart),
// and the apiserver decides each scrape: a ServiceAccount bound to a
// ClusterRole that allows get on /metrics is served (200), one without is
// refused (403), no token and a made-up token are unauthorized (401). The
// probes stay plain HTTP on their own address, and /metrics is not there.
func TestSecureMetrics(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	scraper := serviceAccountToken(t, admin, ns, "prometheus")
	allowMetrics(t, admin, ns, "prometheus")
	stranger := serviceAccountToken(t, admin, ns, "stranger")

	ca, err := certs.NewCA("metrics test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := writeServingCert(t, ca, dir)

	o := testOptions(t, ns)
	o.MetricsSecure, o.MetricsCertDir = true, dir
	o.HealthProbeBindAddress = "localhost:0" // not the metrics address
	log, logs := testkit.Logger(t, "replica")
	o.Logger = log
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, ns)}})
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if r.ProbeAddr() == r.MetricsAddr() {
		t.Fatalf("probes and metrics both on %s", r.MetricsAddr())
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	var served atomic.Pointer[big.Int]
	// A new connection per request, so that each handshake shows the
	// certificate served now.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
		RootCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			served.Store(cs.PeerCertificates[0].SerialNumber)
			return nil
		},
	}}}
	url := "https://" + r.MetricsAddr() + "/metrics"

	code, body := scrape(t, client, url, scraper)
	if code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("a scraper allowed to get /metrics: %d %.200q", code, body)
	}
	if got := served.Load(); got.Cmp(first) != 0 {
		t.Fatalf("served certificate %v, want %v from --metrics-cert-dir", got, first)
	}
	if code, body := scrape(t, client, url, stranger); code != http.StatusForbidden || !strings.Contains(body, "system:serviceaccount:"+ns+":stranger") {
		t.Errorf("a service account without the rule: %d %.200q, want 403 naming it", code, body)
	}
	if code, body := scrape(t, client, url, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d %.200q, want 401", code, body)
	}
	if code, body := scrape(t, client, url, "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("a made-up token: %d %.200q, want 401", code, body)
	}
	// Again, from the cache of decisions: the same answers.
	if code, _ := scrape(t, client, url, scraper); code != http.StatusOK {
		t.Errorf("the allowed scraper's second scrape: %d", code)
	}
	if code, _ := scrape(t, client, url, stranger); code != http.StatusForbidden {
		t.Errorf("the stranger's second scrape: %d", code)
	}
	// Plain HTTP gets nothing from the metrics address.
	if code, body := get(t, "http://"+r.MetricsAddr()+"/metrics"); code == http.StatusOK {
		t.Errorf("plain HTTP to the secure metrics address: %d %.200q", code, body)
	}

	// The probes: plain HTTP, no token, their own address, no /metrics.
	eventually(t, "ready", func() bool { code, _ := get(t, "http://"+r.ProbeAddr()+"/readyz"); return code == http.StatusOK })
	if code, body := get(t, "http://"+r.ProbeAddr()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+r.ProbeAddr()+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the probe address: %d, want 404", code)
	}

	// A renewed certificate is served without a restart.
	second := writeServingCert(t, ca, dir)
	eventually(t, "the renewed certificate served", func() bool {
		scrape(t, client, url, scraper)
		return served.Load().Cmp(second) == 0
	})
	if out := logs.String(); !strings.Contains(out, "/metrics on https://"+r.MetricsAddr()) {
		t.Errorf("the replica did not log that /metrics is HTTPS:\n%s", out)
	}
}

// TestSecureMetricsSelfSigned: without a certificate folder, /metrics is
// served with a self-signed certificate, and the log says so. A replica
// whose own user may not create TokenReviews answers 500 and its log says
// what to grant.
func TestSecureMetricsSelfSigned(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	scraper := serviceAccountToken(t, admin, ns, "prometheus")
	allowMetrics(t, admin, ns, "prometheus")
	// The replica's user may do nothing: without election, its Config
	// serves the reviews only (the factory has its own).
	nobody, err := env.AddUser("metrics-nobody-" + ns)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		config *rest.Config // nil: the admin's
	}{{"admin", nil}, {"nobody", nobody.Config()}} {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions(t, ns)
			o.LeaderElect = false
			o.MetricsSecure = true
			o.HealthProbeBindAddress = "0"
			if c.config != nil {
				o.Config = c.config
			}
			log, logs := testkit.Logger(t, "replica")
			o.Logger = log
			r, stop, done := runNew(t, o, start.Group{Factories: []start.Starter{newFactory(t, ns)}})
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			if !strings.Contains(logs.String(), "self-signed") {
				t.Errorf("the log does not say the certificate is self-signed:\n%s", logs)
			}
			var chain []*x509.Certificate
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // the point of a self-signed certificate
				VerifyConnection:   func(cs tls.ConnectionState) error { chain = cs.PeerCertificates; return nil },
			}}}
			code, body := scrape(t, client, "https://"+r.MetricsAddr()+"/metrics", scraper)
			if len(chain) != 1 || chain[0].CheckSignature(chain[0].SignatureAlgorithm, chain[0].RawTBSCertificate, chain[0].Signature) != nil {
				t.Errorf("the served certificate does not sign itself")
			}
			if c.config == nil {
				if code != http.StatusOK {
					t.Fatalf("an allowed scraper: %d %.200q", code, body)
				}
				return
			}
			if code != http.StatusInternalServerError {
				t.Errorf("a replica that may not review tokens: %d %.200q, want 500", code, body)
			}
			if out := logs.String(); !strings.Contains(out, "may not create tokenreviews.authentication.k8s.io") {
				t.Errorf("the log does not say which right the replica lacks:\n%s", out)
			}
		})
	}
}

// TestPprofOnItsOwnAddress: pprof answers on its address only, not on the
// metrics and probe addresses.
func TestPprofOnItsOwnAddress(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	o := testOptions(t, ns)
	o.PprofBindAddress = "localhost:0" // metrics and probes share 127.0.0.1:0
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, ns)}})
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if r.PprofAddr() == "" || r.PprofAddr() == r.MetricsAddr() || r.PprofAddr() == r.ProbeAddr() {
		t.Fatalf("pprof on %q, metrics on %q, probes on %q", r.PprofAddr(), r.MetricsAddr(), r.ProbeAddr())
	}
	if code, body := get(t, "http://"+r.PprofAddr()+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d %.200q", code, body)
	}
	if code, body := get(t, "http://"+r.PprofAddr()+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("/debug/pprof/goroutine: %d %.200q", code, body)
	}
	for _, addr := range []string{r.MetricsAddr(), r.ProbeAddr()} {
		if code, _ := get(t, "http://"+addr+"/debug/pprof/"); code != http.StatusNotFound {
			t.Errorf("/debug/pprof/ on %s: %d, want 404", addr, code)
		}
	}

	// Off by default.
	if a := start.NewOptions().PprofBindAddress; !(a == "" || a == "0") {
		t.Errorf("NewOptions' pprof address %q, want off", a)
	}
}

// TestUserChecks: the program's ready and health checks run after the
// replica's; a failing one makes the endpoint 503 and names it; ?verbose
// lists every check.
func TestUserChecks(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	var dbDown, diskFull atomic.Bool
	dbDown.Store(true)
	o := testOptions(t, ns)
	o.ReadyChecks = map[string]func(*http.Request) error{
		"database": func(*http.Request) error {
			if dbDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
		"queue": func(*http.Request) error { return nil },
	}
	o.HealthChecks = map[string]func(*http.Request) error{
		"disk": func(*http.Request) error {
			if diskFull.Load() {
				return errors.New("no space left")
			}
			return nil
		},
	}
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, ns)}})
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	probe := func(p string) (int, string) { return get(t, "http://"+r.ProbeAddr()+p) }

	// Unready for the database alone once the replica's own checks pass.
	eventually(t, "caches synced and permissions checked", func() bool {
		_, body := probe("/readyz")
		return strings.Contains(body, "[+]caches ok") && strings.Contains(body, "[+]rbac ok")
	})
	code, body := probe("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]database failed: connection refused") || !strings.HasSuffix(body, "readyz check failed\n") {
		t.Fatalf("/readyz with the database down: %d\n%s", code, body)
	}
	for _, ok := range []string{"[+]ping ok", "[+]caches ok", "[+]lease ok", "[+]queue ok"} {
		if !strings.Contains(body, ok) {
			t.Errorf("/readyz does not list %q:\n%s", ok, body)
		}
	}

	dbDown.Store(false)
	if code, body := probe("/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz with every check passing: %d %q", code, body)
	}
	code, body = probe("/readyz?verbose")
	want := "[+]ping ok\n[+]caches ok\n[+]lease ok\n[+]rbac ok\n[+]database ok\n[+]queue ok\nreadyz check passed\n"
	if code != http.StatusOK || body != want {
		t.Errorf("/readyz?verbose: %d\n%s\nwant\n%s", code, body, want)
	}
	code, body = probe("/healthz?verbose")
	if want := "[+]ping ok\n[+]lease ok\n[+]disk ok\nhealthz check passed\n"; code != http.StatusOK || body != want {
		t.Errorf("/healthz?verbose: %d\n%s\nwant\n%s", code, body, want)
	}
	diskFull.Store(true)
	if code, body := probe("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]disk failed: no space left") {
		t.Errorf("/healthz with the disk full: %d\n%s", code, body)
	}
}

// TestHTTPOptionsMistakes: the endpoints' mistakes are all reported, each
// naming the flag or field to fix; the flags parse.
func TestHTTPOptionsMistakes(t *testing.T) {
	o := testOptions(t, "default")
	o.MetricsCertDir = "/certs" // without --metrics-secure
	o.PprofBindAddress = o.MetricsBindAddress
	o.ReadyChecks = map[string]func(*http.Request) error{"caches": func(*http.Request) error { return nil }, "nil": nil, "two words": func(*http.Request) error { return nil }}
	o.HealthChecks = map[string]func(*http.Request) error{"ping": func(*http.Request) error { return nil }}
	_, err := start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	for _, want := range []string{
		`--metrics-cert-dir="/certs" needs --metrics-secure`,
		`--pprof-bind-address and --metrics-bind-address are both "127.0.0.1:0"`,
		`--pprof-bind-address and --health-probe-bind-address are both "127.0.0.1:0"`,
		`ready check "caches" (Options.ReadyChecks): the name of one of the replica's own checks`,
		`ready check "nil" (Options.ReadyChecks): the function is nil`,
		`ready check "two words" (Options.ReadyChecks): want a name without spaces`,
		`health check "ping" (Options.HealthChecks): the name of one`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New does not say %q:\n%v", want, err)
		}
	}

	o = testOptions(t, "default")
	o.MetricsSecure = true // probes on the same address
	_, err = start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	if err == nil || !strings.Contains(err.Error(), "--health-probe-bind-address and --metrics-bind-address are both") {
		t.Errorf("secure metrics beside the probes: %v", err)
	}
	o.HealthProbeBindAddress = "localhost:0"
	o.MetricsCertDir = t.TempDir() // empty
	_, err = start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	if err == nil || !strings.Contains(err.Error(), "--metrics-cert-dir") || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("an empty certificate folder: %v", err)
	}

	o = start.NewOptions()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse([]string{"--metrics-secure", "--metrics-cert-dir=/certs", "--pprof-bind-address=127.0.0.1:6060"}); err != nil {
		t.Fatal(err)
	}
	if !o.MetricsSecure || o.MetricsCertDir != "/certs" || o.PprofBindAddress != "127.0.0.1:6060" {
		t.Errorf("parsed: secure %v, cert dir %q, pprof %q", o.MetricsSecure, o.MetricsCertDir, o.PprofBindAddress)
	}
}
