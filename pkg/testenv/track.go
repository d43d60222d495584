package testenv

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// openRequests tracks the requests made with the configurations an Env
// hands out, from the moment they are sent until their response body is
// closed or read to its end, so that Stop can name what a test left open:
// a watch whose context never ends keeps the apiserver from stopping, and
// without its name the user only sees a timeout.
type openRequests struct {
	mu   sync.Mutex
	next uint64
	open map[uint64]openRequest
}

type openRequest struct {
	user    string
	method  string // WATCH for a watch
	uri     string // path and query
	since   time.Time
	ctxDone <-chan struct{} // the caller's context's
	cancel  func()          // ends the request
}

func newOpenRequests() *openRequests {
	return &openRequests{open: map[uint64]openRequest{}}
}

// transport returns the rest.Config.WrapTransport of user's configuration.
func (o *openRequests) transport(user string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return &trackingTransport{requests: o, user: user, next: next}
	}
}

// leftOpen describes the requests open now, oldest first, leaving out
// those whose context has ended: they are closing (an informer stopped by
// its context drops its watch a moment later), not left open.
func (o *openRequests) leftOpen(now time.Time) []string {
	o.mu.Lock()
	var open []openRequest
	for _, r := range o.open {
		if !isDone(r.ctxDone) {
			open = append(open, r)
		}
	}
	o.mu.Unlock()
	sort.Slice(open, func(i, j int) bool { return open[i].since.Before(open[j].since) })
	out := make([]string, len(open))
	for i, r := range open {
		out[i] = fmt.Sprintf("%s %s (user %s, open %v)", r.method, r.uri, r.user, now.Sub(r.since).Round(time.Millisecond))
	}
	return out
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (o *openRequests) add(r openRequest) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	o.open[o.next] = r
	return o.next
}

func (o *openRequests) remove(id uint64) {
	o.mu.Lock()
	r, ok := o.open[id]
	delete(o.open, id)
	o.mu.Unlock()
	if ok {
		r.cancel()
	}
}

// endAll ends the requests open now, so that the apiserver they hold can
// stop gracefully.
func (o *openRequests) endAll() {
	o.mu.Lock()
	open := slices.Collect(maps.Values(o.open))
	o.mu.Unlock()
	for _, r := range open {
		r.cancel()
	}
}

type trackingTransport struct {
	requests *openRequests
	user     string
	next     http.RoundTripper
}

func (t *trackingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	method := req.Method
	if q := req.URL.Query().Get("watch"); method == http.MethodGet && (q == "true" || q == "1") {
		method = "WATCH"
	}
	// A context of the transport's own, under the caller's, so that Stop
	// can end a request whose caller never does.
	ctx, cancel := context.WithCancel(req.Context())
	id := t.requests.add(openRequest{
		user: t.user, method: method, uri: req.URL.RequestURI(), since: time.Now(),
		ctxDone: req.Context().Done(), cancel: cancel,
	})
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection (exec, port-forward) is its callers' to
		// close, through a body that must stay an io.ReadWriteCloser:
		// not wrapped, so not tracked.
		t.requests.remove(id)
		return resp, err
	}
	resp.Body = &trackedBody{ReadCloser: resp.Body, done: func() { t.requests.remove(id) }}
	return resp, nil
}

// trackedBody ends its request's tracking when the body is closed or has
// been read to its end (or to an error): either way the request is over.
type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
