package leader_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rein-k8s/rein/pkg/fence"
)

// TestTermFencesExternalCalls: calls to an external system made with a term's context
// carry its token, are refused once the term's fence is closed, and never
// wait past the fence's deadline; calls without a term are refused.
func TestTermFencesExternalCalls(t *testing.T) {
	var got []string
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/never" {
			select {
			case <-r.Context().Done():
			case <-block:
			}
			return
		}
		got = append(got, r.Method+" "+r.Header.Get(fence.TokenHeader))
	}))
	defer srv.Close()
	defer close(block)
	client := &http.Client{Transport: fence.Transport(nil)}
	call := func(ctx context.Context, method, path string) error {
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}

	lease := leaseName(t)
	a := newReplica(t, lease, "replica-a", replicaOptions{timings: shortTimings})
	term := a.campaign(t)
	ctx := fence.WithHold(t.Context(), term)

	if err := call(ctx, http.MethodPost, "/vms"); err != nil {
		t.Fatalf("a write within the term: %v", err)
	}
	if len(got) != 1 || got[0] != "POST "+term.Token().String() {
		t.Fatalf("the system saw %q, want the token %s", got, term.Token())
	}

	// No request waits past the fence's deadline, even with the term live.
	start := time.Now()
	err := call(ctx, http.MethodGet, "/never")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call to a system that never answers: %v, want the fence's deadline", err)
	}
	if took := time.Since(start); took > shortTimings.renew+time.Second {
		t.Fatalf("it returned after %v, want no later than the renew deadline (%v)", took, shortTimings.renew)
	}

	// After the term: writes are refused before they leave the process.
	if err := term.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	var fenced *fence.Error
	if err := call(ctx, http.MethodPut, "/vms/1"); !errors.As(err, &fenced) {
		t.Fatalf("a write after the term: %v, want a *fence.Error", err)
	}
	if len(got) != 1 {
		t.Fatalf("the system saw %q after the term ended", got)
	}

	// A context without a term is refused; an unfenced one passes bare.
	if err := call(t.Context(), http.MethodPost, "/vms"); !errors.Is(err, fence.ErrNoHold) {
		t.Fatalf("no term: %v, want fence.ErrNoHold", err)
	}
	if err := call(fence.Unfenced(t.Context()), http.MethodPost, "/vms"); err != nil || got[len(got)-1] != "POST " {
		t.Fatalf("unfenced: %v, saw %q", err, got)
	}
}
