package webhook

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// certRecheck is how often, at most, a handshake looks at the certificate
// files again.
const certRecheck = time.Second

// certFiles serves the key pair of two files, loaded again when either
// changes. cert-manager and the kubelet replace a mounted Secret's files
// at once (a symlink swap), but a pair copied by hand may be half written
// when a handshake looks: a pair that does not load leaves the last good
// one in service and is tried again at the next check.
type certFiles struct {
	certPath, keyPath string
	log               *logrus.Entry
	now               func() time.Time

	mu      sync.Mutex
	current *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
	failing string // the last load error logged, to log each once
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newCertFiles(dir, certName, keyName string, log *logrus.Entry) (*certFiles, error) {
	c := &certFiles{certPath: filepath.Join(dir, certName), keyPath: filepath.Join(dir, keyName), log: log, now: time.Now}
	stamp, err := c.stat()
	if err == nil {
		err = c.load(stamp)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: serving certificate from %s: %w (mount the Secret that holds it there, e.g. the one cert-manager writes, or set Options.CertDir to where it is)", dir, err)
	}
	c.checked = c.now()
	return c, nil
}

func (c *certFiles) stat() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, p := range []string{c.certPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

func (c *certFiles) load(stamp [2]fileStamp) error {
	pair, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return err
	}
	c.current, c.stamp = &pair, stamp
	return nil
}

// getCertificate is the tls.Config hook: the current pair, reloaded first
// when the files changed since the last look (at most once per second).
func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= certRecheck {
		c.checked = now
		c.reloadLocked()
	}
	return c.current, nil
}

func (c *certFiles) reloadLocked() {
	stamp, err := c.stat()
	if err == nil && stamp == c.stamp {
		return
	}
	if err == nil {
		err = c.load(stamp)
	}
	if err != nil {
		if msg := err.Error(); msg != c.failing {
			c.failing = msg
			c.log.WithError(err).Warn("webhook: the serving certificate's files changed but do not load; serving the previous one")
		}
		return
	}
	c.failing = ""
	c.log.WithField("certificate", c.certPath).Info("webhook: serving certificate reloaded")
}
