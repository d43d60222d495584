package testenv

import (
	"strings"
	"testing"
)

// TestInstallWebhooksRefusesBadInput: a base that is not https://host:port,
// or no CA, is refused before anything is sent.
func TestInstallWebhooksRefusesBadInput(t *testing.T) {
	e := &Env{}
	for _, tc := range []struct {
		base string
		ca   []byte
		want string
	}{
		{"http://127.0.0.1:9443", []byte("ca"), "not https://host:port"},
		{"https://127.0.0.1:9443/validate", []byte("ca"), "not https://host:port"},
		{"https://127.0.0.1:9443", nil, "no CA bundle"},
	} {
		err := e.InstallWebhooks(t.Context(), tc.base, tc.ca)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("InstallWebhooks(%q, %q) = %v, want %q", tc.base, tc.ca, err, tc.want)
		}
	}
}
