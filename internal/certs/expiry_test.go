package certs_test

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rein-k8s/rein/internal/certs"
)

// TestExpiryCollector: the collector reports the NotAfter of the
// certificate served at scrape time, and nothing while none is.
func TestExpiryCollector(t *testing.T) {
	now := time.Now()
	pair, err := certs.SelfSigned([]string{"localhost"}, 48*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	pair.Leaf = nil // as a pair without its parsed leaf
	var serving *tls.Certificate
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(certs.ExpiryCollector("webhook", func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if serving == nil {
			return nil, errors.New("not loaded yet")
		}
		return serving, nil
	}))
	value := func() (float64, bool) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range families {
			for _, m := range fam.GetMetric() {
				if fam.GetName() == "rein_certificate_expiration_timestamp_seconds" && m.GetLabel()[0].GetValue() == "webhook" {
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	if v, ok := value(); ok {
		t.Fatalf("no certificate served, yet the collector reports %v", v)
	}
	serving = &pair
	v, ok := value()
	if want := float64(now.Add(48 * time.Hour).Unix()); !ok || v != want {
		t.Fatalf("expiry %v (reported: %v), want %v", v, ok, want)
	}
}
