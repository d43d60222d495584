package certs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Recheck is how often, at most, a handshake looks at the certificate
// files of a Files again.
const Recheck = time.Second

// Files serves the key pair of two files, loaded again when either
// changes: a server's certificate from a folder (the webhook server's, the
// secure /metrics'). cert-manager and the kubelet replace a mounted
// Secret's files at once (a symlink swap), but a pair copied by hand may
// be half written when a handshake looks: a pair that does not load
// leaves the last good one in service and is tried again at the next
// check.
type Files struct {
	certPath, keyPath string
	what              string // names the server in logs: "webhook", "metrics"
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

// LoadFiles loads the pair certName and keyName of dir; what names the
// server in the logs. It fails when the pair does not load now.
func LoadFiles(dir, certName, keyName, what string, log *logrus.Entry) (*Files, error) {
	c := &Files{certPath: filepath.Join(dir, certName), keyPath: filepath.Join(dir, keyName), what: what, log: log, now: time.Now}
	stamp, err := c.stat()
	if err == nil {
		err = c.load(stamp)
	}
	if err != nil {
		return nil, err
	}
	c.checked = c.now()
	return c, nil
}

func (c *Files) stat() ([2]fileStamp, error) {
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

func (c *Files) load(stamp [2]fileStamp) error {
	pair, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return err
	}
	c.current, c.stamp = &pair, stamp
	return nil
}

// GetCertificate is the tls.Config hook: the current pair, reloaded first
// when the files changed since the last look (at most once per Recheck).
func (c *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= Recheck {
		c.checked = now
		c.reloadLocked()
	}
	return c.current, nil
}

func (c *Files) reloadLocked() {
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
			c.log.WithError(err).Warnf("%s: the serving certificate's files changed but do not load; serving the previous one", c.what)
		}
		return
	}
	c.failing = ""
	c.log.WithField("certificate", c.certPath).Info(c.what + ": serving certificate reloaded")
}
