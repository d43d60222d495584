package httpdeadline

import (
	"context"
	"io"
	"net/http"
	"time"
)

// RoundTrip sends a copy of req through next (a RoundTripper must not
// change the caller's request), with its context cut to deadline (zero:
// unchanged) and edit applied to the copy (nil: none). The deadline's
// context lives until the response body is closed.
func RoundTrip(next http.RoundTripper, req *http.Request, deadline time.Time, edit func(*http.Request)) (*http.Response, error) {
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	out := req.Clone(ctx)
	if edit != nil {
		edit(out)
	}
	resp, err := next.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// Refuse closes req's body, as a RoundTripper must when it does not send
// the request, and returns err.
func Refuse(req *http.Request, err error) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
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
