package connhealth

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The check closes a dead connection within the renew deadline for every
// valid set of lease timings (retry < renew deadline < lease duration).
func TestTimeoutsStayWithinTheRenewDeadline(t *testing.T) {
	for _, c := range []struct{ renew, retry time.Duration }{
		{10 * time.Second, 2 * time.Second},
		{1500 * time.Millisecond, 300 * time.Millisecond},
		{time.Second, 900 * time.Millisecond},
	} {
		idle, ping := Timeouts(c.renew, c.retry)
		if idle <= 0 || ping <= 0 {
			t.Errorf("Timeouts(%v, %v) = %v, %v: want positive", c.renew, c.retry, idle, ping)
		}
		if c.renew-c.retry >= 200*time.Millisecond && idle+ping > c.renew {
			t.Errorf("Timeouts(%v, %v) = %v + %v, past the renew deadline", c.renew, c.retry, idle, ping)
		}
	}
}

// A config built here still authenticates, sends its user agent once,
// trusts the server's CA, speaks HTTP/2 and keeps the user's wrappers.
func TestConfigKeepsWhatTheUserSet(t *testing.T) {
	type seen struct {
		auth, agent []string
		proto       int
	}
	got := make(chan seen, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Values("Authorization"), r.Header.Values("User-Agent"), r.ProtoMajor}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}}`))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	wrapped := false
	cfg := &rest.Config{Host: srv.URL, BearerToken: "secret", UserAgent: "rein-test", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { wrapped = true; return rt })
	checked, err := Config(cfg, time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(checked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("ns").Get(context.Background(), "x", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if len(s.auth) != 1 || s.auth[0] != "Bearer secret" {
		t.Errorf("Authorization = %q, want one bearer token", s.auth)
	}
	if len(s.agent) != 1 || s.agent[0] != "rein-test" {
		t.Errorf("User-Agent = %q, want one rein-test", s.agent)
	}
	if s.proto != 2 {
		t.Errorf("HTTP/%d, want HTTP/2 (the health check is HTTP/2's)", s.proto)
	}
	if !wrapped {
		t.Error("the user's transport wrapper was dropped")
	}
}
