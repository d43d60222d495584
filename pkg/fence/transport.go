package fence

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/rein-k8s/rein/internal/procmetrics"
)

// TokenHeader is the HTTP header Transport puts a hold's token in.
const TokenHeader = "Rein-Fencing-Token"

// Transport returns the fencing RoundTripper around next (nil:
// http.DefaultTransport): each request goes out under the hold its context
// carries; see the package doc for what that does to it. The engine's
// apiserver clients put a replica-wide hold into the context of a write
// that carries none (the engine's fallback hold, which pkg/start sets).
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next}
}

type transport struct{ next http.RoundTripper }

// IsWrite reports whether a request of method changes state: the
// requests a hold must allow.
func IsWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	h, ok := HoldFrom(ctx)
	write := IsWrite(req.Method)
	if !ok {
		if write && ctx.Value(unfencedKey{}) == nil {
			return refuse(req, ErrNoHold)
		}
		return t.next.RoundTrip(req)
	}
	deadline, err := h.Deadline()
	if err != nil {
		if write {
			return refuse(req, err)
		}
		deadline = time.Time{} // a read of an ended hold goes on, uncut
	}
	tok := h.Token()
	return roundTrip(t.next, req, deadline, func(out *http.Request) {
		if !tok.IsZero() {
			out.Header.Set(TokenHeader, tok.String())
		}
	})
}

// WrappedRoundTripper lets client-go and net/http utilities reach the
// transport underneath (k8s.io/apimachinery/pkg/util/net.RoundTripperWrapper).
func (t *transport) WrappedRoundTripper() http.RoundTripper { return t.next }

// roundTrip sends a copy of req through next (a RoundTripper must not
// change the caller's request), with its context cut to deadline (zero:
// unchanged) and edit applied to the copy. The deadline's context lives
// until the response body is closed.
func roundTrip(next http.RoundTripper, req *http.Request, deadline time.Time, edit func(*http.Request)) (*http.Response, error) {
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	out := req.Clone(ctx)
	edit(out)
	resp, err := next.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// refuse closes req's body, as a RoundTripper must when it does not send
// the request, counts the refusal (rein_fence_refusals_total, by the
// hold's Lease) and returns err.
func refuse(req *http.Request, err error) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	var lease string
	if e, ok := errors.AsType[*Error](err); ok {
		lease = e.Lease
	}
	procmetrics.FenceRefused(lease)
	return nil, err
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
