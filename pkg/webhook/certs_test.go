package webhook

import (
	"context"
	"crypto/tls"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/rein-k8s/rein/internal/testkit"
)

// TestCertificateRotationLosesNoRequest: serving certificates renewed in
// the folder (as cert-manager renews a mounted Secret) are picked up
// without a restart while requests flow, and none of them fails.
func TestCertificateRotationLosesNoRequest(t *testing.T) {
	hook, ts := serveHook(t, func(s *Server) (Hook, error) {
		return Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) { return nil, nil })
	})
	// Each request on a new connection, so that each makes a handshake and
	// sees the certificate being served.
	servedSerials := make(chan *big.Int, 10000)
	pool := ts.ca.client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	newClient := func() *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
			RootCAs: pool,
			VerifyConnection: func(cs tls.ConnectionState) error {
				servedSerials <- cs.PeerCertificates[0].SerialNumber
				return nil
			},
		}}}
	}
	ctx, stop := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &testServer{Server: ts.Server, http: newClient()}
			for ctx.Err() == nil {
				sent.Add(1)
				resp := c.reviewNoFatal(hook.Path, configMapRequest(t, admissionv1.Create, "x", nil, configMap("x", nil)))
				if resp == nil || !resp.Allowed {
					failed.Add(1)
				}
			}
		}()
	}
	// Three renewals; after each, wait until a handshake serves it.
	for range 3 {
		serial := ts.ca.issue(t, ts.dir)
		deadline := time.After(30 * time.Second)
	await:
		for {
			select {
			case got := <-servedSerials:
				if got.Cmp(serial) == 0 {
					break await
				}
			case <-deadline:
				t.Fatalf("certificate %v not served 30s after it was written", serial)
			}
		}
	}
	stop()
	wg.Wait()
	if failed.Load() != 0 || sent.Load() == 0 {
		t.Errorf("%d of %d requests failed across three certificate renewals, want 0", failed.Load(), sent.Load())
	}
	t.Logf("%d requests, none failed, across three renewals", sent.Load())
}

// readySource serves one certificate and stops with its context, as
// SecretCertificates does.
type readySource struct{ cert *tls.Certificate }

func (r readySource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert, nil
}
func (readySource) Start(ctx context.Context) error { <-ctx.Done(); return nil }

// TestServeStopsWithItsCertificateSource: a server whose certificate
// source ends with the server's context stops, whichever of the two it
// sees end first (a context ended before Serve makes both at once).
func TestServeStopsWithItsCertificateSource(t *testing.T) {
	dir := t.TempDir()
	newTestCA(t).issue(t, dir)
	pair, err := tls.LoadX509KeyPair(dir+"/tls.crt", dir+"/tls.key")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		s, err := NewServer(Options{Addr: "127.0.0.1:0", Certificates: readySource{&pair}, Logger: testLog()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		if i%2 == 0 {
			// Ended before Serve looks: the source and the context end at
			// once.
			cancel()
			go func() { served <- s.Serve(ctx) }()
		} else {
			go func() { served <- s.Serve(ctx) }()
			eventually(t, func() bool { return s.Ready() == nil })
			cancel()
		}
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("run %d: Serve: %v", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("run %d: Serve did not return 20s after its context ended", i)
		}
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, time.Millisecond, "the condition", cond)
}
