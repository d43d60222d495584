package engine_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// TestSyncErrorsNameTheCause: when a cache does not sync, the error names
// the cause with the apiserver's or the network's own words and says what
// to do: an apiserver that does not listen, a CA that does not trust it,
// credentials refused, RBAC, a CRD missing.
func TestSyncErrorsNameTheCause(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		return addr
	}()
	nobody, err := env.AddUser("nobody-sync")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		config func() *rest.Config
		res    engine.Resource
		want   []string
	}{
		{"closed port", func() *rest.Config {
			c := env.Config()
			c.Host = "https://" + closed
			return c
		}, factorytest.ConfigMaps, []string{closed, "connection refused", "cannot be reached"}},
		{"wrong CA", func() *rest.Config {
			c := env.Config()
			c.CAData = otherCA(t)
			return c
		}, factorytest.ConfigMaps, []string{"x509", "TLS failed", "certificate-authority"}},
		{"credentials refused", func() *rest.Config {
			c := env.Config()
			c.CertData, c.KeyData, c.CertFile, c.KeyFile = nil, nil, "", ""
			c.BearerToken = "not-a-token"
			return c
		}, factorytest.ConfigMaps, []string{"401", "credentials"}},
		{"RBAC forbids list", nobody.Config, factorytest.ConfigMaps, []string{"403", "forbidden", "grant list and watch on configmaps"}},
		{"CRD missing", env.Config, factorytest.Gadgets, []string{"404", "gadgets.test.rein.dev", "install its CRD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := engine.NewFactory(tc.config(), newScheme(t), engine.Options{SyncTimeout: 2 * time.Second, RateLimit: fastRetries})
			if err != nil {
				t.Fatal(err)
			}
			controller(t, f, tc.res)
			if err := engine.OpsOf(f).StartCaches(t.Context()); err != nil {
				t.Fatal(err)
			}
			err = engine.OpsOf(f).WaitForCacheSync(t.Context())
			var syncErr *engine.SyncError
			if !errors.As(err, &syncErr) {
				t.Fatalf("WaitForCacheSync: %v, want a *SyncError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			t.Logf("%v", err)
			if !strings.Contains(err.Error(), "not synced after 2") {
				t.Errorf("the error does not give the real wait (about 2s):\n%v", err)
			}
		})
	}
}

// otherCA is the PEM of a CA that signed nothing the apiserver has.
func otherCA(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not-the-apiserver-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
