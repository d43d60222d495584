package fence_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rein-k8s/rein/internal/renewal"
	"github.com/rein-k8s/rein/pkg/fence"
)

// recorder is the transport underneath: it records what reached it.
type recorder struct {
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.reqs = append(r.reqs, req)
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const url = "https://apiserver/api/v1/namespaces/ns/configmaps"

func send(t *testing.T, rt http.RoundTripper, ctx context.Context, method string) (*http.Request, error) {
	t.Helper()
	body := &closeRecorder{Reader: strings.NewReader("{}")}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		if !body.closed {
			t.Fatalf("%s refused without closing the request body", method)
		}
		return nil, err
	}
	_ = resp.Body.Close()
	return resp.Request, nil
}

// TestTransport: writes pass only under a hold that allows them, carry its
// token and its deadline; reads always pass; a context with no hold is
// refused unless marked Unfenced.
func TestTransport(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(epoch)
	r := renewal.New("ns/lease", 10*time.Second, clk, "no term yet")
	next := &recorder{}
	rt := fence.Transport(next)
	held := fence.WithHold(t.Context(), r)
	writes := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

	// Closed: every write is refused with an *Error that explains itself.
	for _, m := range writes {
		_, err := send(t, rt, held, m)
		var fe *fence.Error
		if !errors.As(err, &fe) || !errors.Is(err, fence.ErrFenced) || fe.Lease != "ns/lease" ||
			!strings.Contains(err.Error(), "no term yet") || !strings.Contains(err.Error(), "never renewed") {
			t.Fatalf("%s with the fence closed: %v, want an *Error naming the lease and the reason", m, err)
		}
	}
	// Reads pass, uncut.
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		out, err := send(t, rt, held, m)
		if err != nil {
			t.Fatalf("%s with the fence closed: %v", m, err)
		}
		if _, ok := out.Context().Deadline(); ok {
			t.Fatalf("%s of a closed hold got a deadline", m)
		}
	}
	if len(next.reqs) != 2 {
		t.Fatalf("%d requests reached the transport, want the 2 reads", len(next.reqs))
	}

	// Open: writes pass with the token and the fence's deadline.
	tok := fence.Token{Namespace: "ns", Lease: "lease", Term: 4}
	r.Open(clk.Now(), tok)
	out, err := send(t, rt, held, http.MethodPost)
	if err != nil {
		t.Fatalf("POST with the fence open: %v", err)
	}
	if got := out.Header.Get(fence.TokenHeader); got != "ns/lease/4" {
		t.Fatalf("%s: %q, want ns/lease/4", fence.TokenHeader, got)
	}
	if d, ok := out.Context().Deadline(); !ok || !d.Equal(epoch.Add(10*time.Second)) {
		t.Fatalf("deadline %v %v, want the fence's %v", d, ok, epoch.Add(10*time.Second))
	}
	// A renew moves the deadline; at the deadline writes stop.
	clk.SetTime(epoch.Add(3 * time.Second))
	r.Renewed(clk.Now())
	clk.SetTime(epoch.Add(13*time.Second - time.Nanosecond))
	if _, err := send(t, rt, held, http.MethodPut); err != nil {
		t.Fatalf("PUT 1ns before the deadline: %v", err)
	}
	clk.SetTime(epoch.Add(13 * time.Second))
	if _, err := send(t, rt, held, http.MethodPut); !errors.Is(err, fence.ErrFenced) || !strings.Contains(err.Error(), "last renewed by this replica 10s ago") {
		t.Fatalf("PUT at the deadline: %v", err)
	}
	// A late renew does not reopen a closed fence.
	r.Close("released")
	r.Renewed(clk.Now())
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "released") {
		t.Fatalf("after Close and a late renew: %v", err)
	}

	// No hold: writes refused, reads pass; Unfenced passes bare.
	if _, err := send(t, rt, t.Context(), http.MethodPost); !errors.Is(err, fence.ErrNoHold) {
		t.Fatalf("POST with no hold: %v, want ErrNoHold", err)
	}
	if _, err := send(t, rt, t.Context(), http.MethodGet); err != nil {
		t.Fatalf("GET with no hold: %v", err)
	}
	out, err = send(t, rt, fence.Unfenced(t.Context()), http.MethodPost)
	if err != nil || out.Header.Get(fence.TokenHeader) != "" {
		t.Fatalf("unfenced POST: %v, header %q", err, out.Header.Get(fence.TokenHeader))
	}
}

// TestDeadlineLastsUntilTheBodyIsClosed: the cut context of a request lives
// until its response body is closed, so a streamed response is not cut off
// by the transport's own cleanup.
func TestDeadlineLastsUntilTheBodyIsClosed(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	r := renewal.New("ns/lease", time.Hour, clk, "")
	r.Open(clk.Now(), fence.Token{Namespace: "ns", Lease: "lease", Term: 1})
	next := &recorder{}
	req, _ := http.NewRequestWithContext(fence.WithHold(t.Context(), r), http.MethodPost, url, nil)
	resp, err := fence.Transport(next).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	sent := next.reqs[0].Context()
	if sent.Err() != nil {
		t.Fatal("the request's context ended before the body was closed")
	}
	_ = resp.Body.Close()
	if sent.Err() == nil {
		t.Fatal("the request's context outlives its response body")
	}
	if req.Header.Get(fence.TokenHeader) != "" {
		t.Fatal("the caller's request was changed")
	}
}

func TestTokenTravelsInTheContext(t *testing.T) {
	if _, ok := fence.TokenFrom(context.Background()); ok {
		t.Fatal("a token in a bare context")
	}
	tok := fence.Token{Namespace: "ns", Lease: "l", Term: 7}
	got, ok := fence.TokenFrom(fence.WithHold(context.Background(), fence.Fixed(tok)))
	if !ok || got != tok || got.String() != "ns/l/7" {
		t.Fatalf("got %v %v", got, ok)
	}
	if _, ok := fence.TokenFrom(fence.WithHold(context.Background(), fence.Fixed(fence.Token{}))); ok {
		t.Fatal("a hold without a token reported one")
	}
	if (fence.Token{Namespace: "ns", Lease: "other", Term: 9}).Newer(tok) {
		t.Fatal("a token of another lease compared as newer")
	}
	if !(fence.Token{Namespace: "ns", Lease: "l", Term: 8}).Newer(tok) || tok.Newer(tok) {
		t.Fatal("Newer does not order the terms of one lease")
	}
}
