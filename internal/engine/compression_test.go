package engine_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
)

// TestResponsesUncompressedByDefault: a factory's clients do not ask for
// gzip (the HTTP transport would send Accept-Encoding: gzip by itself)
// unless Options.CompressResponses says so.
func TestResponsesUncompressedByDefault(t *testing.T) {
	var mu sync.Mutex
	var encodings []string
	// TLS, as every apiserver: for plain HTTP without TLS options client-go
	// uses http.DefaultTransport, which ignores DisableCompression.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		encodings = append(encodings, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
	}))
	t.Cleanup(srv.Close)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	configMaps := engine.Resource{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true}
	for _, tc := range []struct {
		compress bool
		want     string
	}{{false, ""}, {true, "gzip"}} {
		f, err := engine.NewFactory(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, scheme, engine.Options{CompressResponses: tc.compress})
		if err != nil {
			t.Fatal(err)
		}
		c, err := engine.OpsOf(f).Clients().ForResource(configMaps)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		encodings = nil
		mu.Unlock()
		_ = c.Get(t.Context(), "default", "x", metav1.GetOptions{}, &corev1.ConfigMap{})
		mu.Lock()
		got := encodings
		mu.Unlock()
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("CompressResponses %v: Accept-Encoding %q, want %q", tc.compress, got, tc.want)
		}
	}
}
