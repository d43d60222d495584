package webhook

import (
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/internal/certs"
)

// newCertFiles loads the serving certificate from dir (internal/certs.Files:
// reloaded when the files change).
func newCertFiles(dir, certName, keyName string, log *logrus.Entry) (*certs.Files, error) {
	files, err := certs.LoadFiles(dir, certName, keyName, "webhook", log)
	if err != nil {
		return nil, fmt.Errorf("webhook: serving certificate from %s: %w (mount the Secret that holds it there, e.g. the one cert-manager writes, or set Options.CertDir to where it is)", dir, err)
	}
	return files, nil
}
