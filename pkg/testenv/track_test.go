package testenv

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// roundTripFunc answers with a body the test holds, and keeps the request
// the transport passed on.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestOpenRequests: a request is open from its sending until its body is
// closed or read to the end; a watch is named WATCH; a request whose
// context ended is closing, not left open; endAll ends the requests'
// contexts; an upgraded connection is not tracked.
func TestOpenRequests(t *testing.T) {
	o := newOpenRequests()
	var sent []*http.Request
	status := http.StatusOK
	rt := o.transport("alice")(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r)
		return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("x"))}, nil
	}))
	send := func(ctx context.Context, url string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	open := func(want ...string) {
		t.Helper()
		got := o.leftOpen(time.Now())
		if len(got) != len(want) {
			t.Fatalf("open: %q, want %d like %q", got, len(want), want)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("open[%d] = %q, want it to begin with %q", i, got[i], want[i])
			}
		}
	}

	watch := send(context.Background(), "https://h/api/v1/namespaces/default/configmaps?watch=true")
	get := send(context.Background(), "https://h/api/v1/namespaces")
	open("WATCH /api/v1/namespaces/default/configmaps?watch=true (user alice, open ", "GET /api/v1/namespaces (user alice")

	if _, err := io.ReadAll(get.Body); err != nil {
		t.Fatal(err)
	}
	open("WATCH /api/v1/namespaces/default/configmaps?watch=true")
	_ = watch.Body.Close()
	open()

	ctx, cancel := context.WithCancel(context.Background())
	send(ctx, "https://h/apis/x/v1/things?watch=1")
	open("WATCH /apis/x/v1/things?watch=1")
	cancel()
	open()

	send(context.Background(), "https://h/api/v1/pods?watch=true")
	o.endAll()
	if err := sent[len(sent)-1].Context().Err(); err == nil {
		t.Fatal("endAll left the request's context alive")
	}

	status = http.StatusSwitchingProtocols
	send(context.Background(), "https://h/api/v1/namespaces/default/pods/p/exec")
	open("WATCH /api/v1/pods?watch=true") // the exec is not there
}
