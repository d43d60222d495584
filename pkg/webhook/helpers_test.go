package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/certs"
)

// testCA is a certificate authority for tests.
type testCA struct {
	*certs.CA
	pem []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	ca, err := certs.NewCA("rein webhook test CA", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{CA: ca, pem: ca.CertPEM}
}

// issue writes a serving certificate for 127.0.0.1 into dir, each file
// written next to its target and renamed into place, as the kubelet
// updates a mounted Secret. It returns the certificate's serial number.
func (ca *testCA) issue(t testing.TB, dir string) *big.Int {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, 24*time.Hour, time.Now())
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
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber
}

// client trusts ca and dials the server's address.
func (ca *testCA) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
}

// testServer is a started Server with its CA and registry.
type testServer struct {
	*Server
	ca       *testCA
	dir      string
	registry *prometheus.Registry
	http     *http.Client
}

// serveHook starts a test server with the hook that add registers on it.
func serveHook(t *testing.T, add func(*Server) (Hook, error)) (Hook, *testServer) {
	t.Helper()
	var hook Hook
	ts := startServer(t, func(s *Server) {
		var err error
		if hook, err = add(s); err != nil {
			t.Fatal(err)
		}
	})
	return hook, ts
}

func startServer(t *testing.T, register func(*Server)) *testServer {
	t.Helper()
	return startServerIn(t, context.Background(), register)
}

// startServerIn is startServer with Serve's context derived from base.
func startServerIn(t *testing.T, base context.Context, register func(*Server)) *testServer {
	t.Helper()
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.issue(t, dir)
	reg := prometheus.NewRegistry()
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := NewServer(Options{Addr: "127.0.0.1:0", CertDir: dir, Registerer: reg, Logger: logrus.NewEntry(log)})
	if err != nil {
		t.Fatal(err)
	}
	register(s)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(base)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	ts := &testServer{Server: s, ca: ca, dir: dir, registry: reg, http: ca.client()}
	t.Cleanup(func() {
		ts.http.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func (ts *testServer) url(path string) string { return "https://" + ts.Addr() + path }

// post sends body to path and returns the status and the body.
func (ts *testServer) post(t *testing.T, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := ts.http.Post(ts.url(path), contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// review sends an AdmissionReview for req and returns the response.
func (ts *testServer) review(t *testing.T, path string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	if req.UID == "" {
		req.UID = types.UID("uid-" + req.Name)
	}
	in := admissionv1.AdmissionReview{Request: req}
	in.APIVersion, in.Kind = "admission.k8s.io/v1", "AdmissionReview"
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	code, body := ts.post(t, path, "application/json", b)
	if code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, code, body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	if out.Response == nil || out.Response.UID != req.UID {
		t.Fatalf("response %s: want one with UID %s", body, req.UID)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
		t.Fatalf("response is %s %s, want an admission.k8s.io/v1 AdmissionReview", out.APIVersion, out.Kind)
	}
	return out.Response
}

// count is rein_webhook_requests_total for path and result.
func (ts *testServer) count(t *testing.T, path, result string) float64 {
	t.Helper()
	mfs, err := ts.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rein_webhook_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["webhook"] == path && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func coreScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reviewNoFatal is review for goroutines other than the test's: nil when
// the request fails.
func (ts *testServer) reviewNoFatal(path string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	in := admissionv1.AdmissionReview{Request: req}
	in.APIVersion, in.Kind = "admission.k8s.io/v1", "AdmissionReview"
	b, err := json.Marshal(&in)
	if err != nil {
		return nil
	}
	resp, err := ts.http.Post(ts.url(path), "application/json", bytes.NewReader(b))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return nil
	}
	return out.Response
}

func testLog() *logrus.Entry {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return logrus.NewEntry(log)
}
