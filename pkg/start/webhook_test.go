package start_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/start"
	"github.com/rein-k8s/rein/pkg/webhook"
)

// webhookServer is a webhook server on 127.0.0.1:port with a validating
// webhook for ConfigMaps that refuses the name "refused", and a client
// that trusts its CA.
func webhookServer(t *testing.T, addr string) (*webhook.Server, webhook.Hook, *http.Client) {
	t.Helper()
	s, hook, client, _ := webhookServerCA(t, addr)
	return s, hook, client
}

// webhookServerCA is webhookServer that also returns its CA's certificate
// (PEM), for an apiserver to call it.
func webhookServerCA(t *testing.T, addr string) (*webhook.Server, webhook.Hook, *http.Client, []byte) {
	t.Helper()
	ca, err := certs.NewCA("test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := webhook.NewServer(webhook.Options{Addr: addr, CertDir: dir, Logger: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	hook, err := webhook.Validating(s, scheme, func(ctx context.Context, old, obj *corev1.ConfigMap) (webhook.Warnings, error) {
		if obj != nil && obj.Name == "refused" {
			return nil, errRefused
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	return s, hook, client, ca.CertPEM
}

type refusal struct{}

func (refusal) Error() string { return "refused by the test" }

var errRefused = refusal{}

// admit asks the webhook about a ConfigMap named name.
func admit(t *testing.T, client *http.Client, url, name string) *admissionv1.AdmissionResponse {
	t.Helper()
	cm, _ := json.Marshal(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "x"}})
	in := admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Operation: admissionv1.Create, Name: name, Namespace: "x", Object: runtime.RawExtension{Raw: cm}}}
	in.APIVersion, in.Kind = "admission.k8s.io/v1", "AdmissionReview"
	b, _ := json.Marshal(&in)
	resp, err := client.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("webhook answer: %v", err)
	}
	return out.Response
}

// TestWebhookServedByEveryReplica: a standby (another replica holds the
// Lease) serves its webhooks, and is ready; the server stops when the
// replica does. An address in use
// fails New at once.
func TestWebhookServedByEveryReplica(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	o := testOptions(t, ns)
	other, id := otherLeads(t, admin, ns, o)

	s, hook, client := webhookServer(t, "127.0.0.1:0")
	o.Webhook = s
	r, err := start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, ns)}})
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + s.Addr() + hook.Path

	// The address is bound by New: a second replica on it fails there.
	dup, _, _ := webhookServer(t, s.Addr())
	o2 := testOptions(t, ns)
	o2.Webhook = dup
	if _, err := start.New(o2, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, ns)}}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("a second replica on %s: %v, want the address in use named", s.Addr(), err)
	}

	stop, done := run(r)
	eventually(t, "the standby is ready", func() bool { code, _ := get(t, "http://"+r.ProbeAddr()+"/readyz"); return code == http.StatusOK })
	if h := other.Leader(); h != id {
		t.Fatalf("the lease moved to %q: the test needs this replica a standby", h)
	}
	if resp := admit(t, client, url, "refused"); resp.Allowed || !strings.Contains(resp.Result.Message, "refused by the test") {
		t.Errorf("the standby's webhook: %+v, want the validator's refusal", resp.Result)
	}
	if resp := admit(t, client, url, "fine"); !resp.Allowed {
		t.Errorf("the standby's webhook: %+v, want allowed", resp.Result)
	}
	// The server was built without a Registerer: the replica's /metrics
	// serves its metrics.
	_, metrics := get(t, "http://"+r.MetricsAddr()+"/metrics")
	for _, result := range []string{"allowed", "denied"} {
		if want := `rein_webhook_requests_total{result="` + result + `",webhook="` + hook.Path + `"} 1`; !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	client.CloseIdleConnections()
	if _, err := client.Post(url, "application/json", strings.NewReader("{}")); err == nil {
		t.Errorf("the webhook server still answers after Run returned")
	}
}
