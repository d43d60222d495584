package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// replicaArgs are the webhook flags of a new replica: a loopback port of
// its own choosing (a port picked here and closed before the replica bound
// it could be taken in between) and the certificate folder. join adds the
// port it bound to the balancer's backends.
func (w *webhooks) replicaArgs() []string {
	if w.secret != "" {
		return []string{"--webhook-bind-address", "127.0.0.1:0", "--webhook-secret", w.secret, "--webhook-host", "127.0.0.1"}
	}
	return []string{"--webhook-bind-address", "127.0.0.1:0", "--webhook-cert-dir", w.certDir}
}

// join waits for p to name the address its webhook server bound (pkg/start
// logs it as webhooks=<addr>) and adds it to the balancer's backends.
func (w *webhooks) join(ctx context.Context, p *Process) error {
	after, err := p.awaitLine(ctx, "webhooks=", 30*time.Second)
	if err != nil {
		return err
	}
	fields := strings.Fields(after)
	if len(fields) == 0 {
		return fmt.Errorf("%s logged no webhook address", p.Name)
	}
	w.balancer.AddBackend(strings.Trim(fields[0], `"`))
	return nil
}

func (w *webhooks) close() {
	if w != nil && w.balancer != nil {
		_ = w.balancer.Close()
	}
}
