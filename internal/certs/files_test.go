package certs

import (
	"io"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// issue writes a serving certificate for 127.0.0.1 into dir and returns
// its serial number.
func issue(t *testing.T, ca *CA, dir string) *big.Int {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pair, err := LoadFiles(dir, "tls.crt", "tls.key", "test", discard())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := pair.GetCertificate(nil)
	return c.Leaf.SerialNumber
}

func discard() *logrus.Entry {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return logrus.NewEntry(log)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestHalfWrittenCertificateKeepsTheOld: a key pair that does not load
// (one file renewed, the other not yet) leaves the last good pair in
// service; the complete pair is served at the next check.
func TestHalfWrittenCertificateKeepsTheOld(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir, other := t.TempDir(), t.TempDir()
	first := issue(t, ca, dir)
	second := issue(t, ca, other)
	now := time.Now()
	files, err := LoadFiles(dir, "tls.crt", "tls.key", "test", discard())
	if err != nil {
		t.Fatal(err)
	}
	files.now = func() time.Time { return now }
	serial := func() *big.Int {
		c, err := files.GetCertificate(nil)
		if err != nil || c == nil || c.Leaf == nil {
			t.Fatalf("GetCertificate: %v, %v", c, err)
		}
		return c.Leaf.SerialNumber
	}
	copyFile(t, filepath.Join(other, "tls.crt"), filepath.Join(dir, "tls.crt")) // the certificate of another key
	now = now.Add(Recheck)
	if got := serial(); got.Cmp(first) != 0 {
		t.Errorf("with a mismatched pair: serving %v, want the previous %v", got, first)
	}
	copyFile(t, filepath.Join(other, "tls.key"), filepath.Join(dir, "tls.key"))
	now = now.Add(Recheck)
	if got := serial(); got.Cmp(second) != 0 {
		t.Errorf("with the pair complete: serving %v, want %v", got, second)
	}
}

// TestSelfSigned: the certificate names its hosts and verifies only
// against itself.
func TestSelfSigned(t *testing.T) {
	pair, err := SelfSigned([]string{"localhost", "127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := pair.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := pair.Leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := pair.Leaf.CheckSignature(pair.Leaf.SignatureAlgorithm, pair.Leaf.RawTBSCertificate, pair.Leaf.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
}
