package lab

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/netfault"
)

// webhooks is the lab's stand-in for the webhook Service of deploy/: a
// balancer in front of every replica's webhook server, a serving
// certificate for 127.0.0.1 in a folder every replica reads
// (--webhook-cert-dir, as cert-manager mounts it), and the generated
// configurations and CRD conversion stanza pointed at the balancer.
type webhooks struct {
	balancer *netfault.Balancer
	certDir  string
	secret   string // --webhook-secret instead of certDir
	caPEM    []byte
}

// startWebhooks makes the certificate and the balancer, and registers the
// generated deploy/webhook/webhooks.yaml and the CRD's conversion with URL
// endpoints on the balancer: the apiserver calls whichever replica
// answers first.
func (l *Lab) startWebhooks(ctx context.Context) error {
	ca, err := certs.NewCA("vmcontroller-lab", 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	// With a Secret, the replicas make their own CA, and the leader
	// replaces this bundle with it: until then the apiserver trusts none
	// of them, as in a cluster before the first leader.
	w := &webhooks{certDir: filepath.Join(l.Dir, "webhook-certs"), secret: l.opts.WebhookSecret, caPEM: ca.CertPEM}
	if err := os.MkdirAll(w.certDir, 0o700); err != nil {
		return err
	}
	for name, content := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(w.certDir, name), content, 0o600); err != nil {
			return err
		}
	}
	if w.balancer, err = netfault.NewBalancer(); err != nil {
		return err
	}
	l.webhooks = w

	// The configurations and the CRD's conversion as rein-gen generated
	// them, with the URL of the balancer instead of the Service of a
	// cluster.
	return l.Env.InstallWebhooks(ctx, "https://"+w.balancer.Addr(), w.caPEM,
		filepath.Join(l.opts.RepoRoot, "samples/vmcontroller/deploy/webhook/webhooks.yaml"))
}

// replicaArgs are the webhook flags of a new replica, which joins the
// balancer's backends: a free loopback port and the certificate folder.
func (w *webhooks) replicaArgs() ([]string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	w.balancer.AddBackend(addr)
	if w.secret != "" {
		return []string{"--webhook-bind-address", addr, "--webhook-secret", w.secret, "--webhook-host", "127.0.0.1"}, nil
	}
	return []string{"--webhook-bind-address", addr, "--webhook-cert-dir", w.certDir}, nil
}

func (w *webhooks) close() {
	if w != nil && w.balancer != nil {
		_ = w.balancer.Close()
	}
}
