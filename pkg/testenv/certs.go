package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// authority is a control plane's throw-away certificate authority: it signs
// the apiserver's serving certificate and the users' client certificates.
// ECDSA keys, because they are made in microseconds where RSA takes tens of
// milliseconds each.
type authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// validity is long enough for the longest benchmark; the certificates
// die with the control plane anyway.
const validity = 7 * 24 * time.Hour

func newAuthority() (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate(pkix.Name{CommonName: "rein-testenv-ca"})
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, certPEM: pemBlock("CERTIFICATE", der)}, nil
}

// servingCert is the apiserver's certificate, for 127.0.0.1 and localhost.
func (a *authority) servingCert() (certPEM, keyPEM []byte, err error) {
	tmpl, err := certTemplate(pkix.Name{CommonName: "kube-apiserver"})
	if err != nil {
		return nil, nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	tmpl.DNSNames = []string{"localhost"}
	return a.sign(tmpl)
}

// clientCert authenticates as user name in groups: the apiserver reads
// the user from the common name and the groups from the organizations.
func (a *authority) clientCert(name string, groups []string) (certPEM, keyPEM []byte, err error) {
	tmpl, err := certTemplate(pkix.Name{CommonName: name, Organization: groups})
	if err != nil {
		return nil, nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return a.sign(tmpl)
}

func (a *authority) sign(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = ecKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

func certTemplate(subject pkix.Name) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		// A little in the past, for clocks that disagree by a little.
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(validity),
	}, nil
}

// serviceAccountKeys is the key pair that signs and checks service account
// tokens, as PEM: the private key, and the public key.
func serviceAccountKeys() (keyPEM, pubPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = ecKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pemBlock("PUBLIC KEY", pub), nil
}

func ecKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

// certFiles are the paths of the certificates and keys in Dir.
type certFiles struct {
	certDir, ca, saKey, saPub string
}

func (e *Env) writeCerts() (certFiles, error) {
	ca, err := newAuthority()
	if err != nil {
		return certFiles{}, err
	}
	e.ca = ca
	certDir := filepath.Join(e.dir, "certs")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		return certFiles{}, err
	}
	serving, servingKey, err := ca.servingCert()
	if err != nil {
		return certFiles{}, err
	}
	saKey, saPub, err := serviceAccountKeys()
	if err != nil {
		return certFiles{}, err
	}
	f := certFiles{
		certDir: certDir,
		ca:      filepath.Join(certDir, "ca.crt"),
		saKey:   filepath.Join(certDir, "service-account.key"),
		saPub:   filepath.Join(certDir, "service-account.pub"),
	}
	for path, content := range map[string][]byte{
		f.ca:                                    ca.certPEM,
		filepath.Join(certDir, "apiserver.crt"): serving,
		filepath.Join(certDir, "apiserver.key"): servingKey,
		f.saKey:                                 saKey,
		f.saPub:                                 saPub,
	} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			return certFiles{}, err
		}
	}
	return f, nil
}

// probeClient asks etcd and kube-apiserver whether they are ready. It
// trusts the control plane's CA and has a client certificate in
// system:masters, so that no APIServerFlags (anonymous-auth=false, say)
// keep it from /healthz.
func (e *Env) probeClient() (*http.Client, error) {
	certPEM, keyPEM, err := e.ca.clientCert("testenv-probe", []string{"system:masters"})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.cert)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}}}, nil
}
