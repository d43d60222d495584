package engine

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// readRecorder is a response body that hands out data at most max bytes
// per Read and records the size of every buffer it was given.
type readRecorder struct {
	data   *bytes.Reader
	max    int
	sizes  []int
	closed bool
}

func (r *readRecorder) Read(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	if len(p) > r.max {
		p = p[:r.max]
	}
	return r.data.Read(p)
}

func (r *readRecorder) Close() error { r.closed = true; return nil }

func response(t *testing.T, rawURL string, status int, body io.ReadCloser) *http.Response {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Response{StatusCode: status, Body: body, Request: &http.Request{Method: http.MethodGet, URL: u}}
}

// TestWatchBodyReadInLargeChunks: a decoder reading a watch stream one
// small frame at a time reaches the transport in reads of up to 32 KiB,
// and gets every byte in order.
func TestWatchBodyReadInLargeChunks(t *testing.T) {
	const frame, frames = 1300, 1000
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), frame*frames/36+1)[:frame*frames]
	under := &readRecorder{data: bytes.NewReader(data), max: 1 << 20}
	resp, err := bufferWatch(response(t, "https://api/api/v1/configmaps?watch=true&resourceVersion=1", http.StatusOK, under), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, frame)
	for {
		n, err := io.ReadFull(resp.Body, buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d sent in order", len(got), len(data))
	}
	// 1.3 MB through 32 KiB reads: 40 reads and the one that finds EOF.
	if want := len(data)/watchReadBuffer + 2; len(under.sizes) > want {
		t.Errorf("the body was read %d times for %d bytes, want at most %d (reads of %d B)", len(under.sizes), len(data), want, watchReadBuffer)
	}
	for _, s := range under.sizes {
		if s < watchReadBuffer {
			t.Fatalf("a read of the body asked for %d bytes, want %d: the decoder's frame size reached the transport", s, watchReadBuffer)
		}
	}
	if err := resp.Body.Close(); err != nil || !under.closed {
		t.Errorf("Close: %v, body closed %v", err, under.closed)
	}
}

// TestWatchBodyLoneEventNotHeldBack: a read returns the bytes that are
// there; it does not wait to fill the buffer (a watch may then be quiet
// for minutes).
func TestWatchBodyLoneEventNotHeldBack(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	resp, err := bufferWatch(response(t, "https://api/apis/coordination.k8s.io/v1/leases?watch=1", http.StatusOK, pr), nil)
	if err != nil {
		t.Fatal(err)
	}
	event := []byte(`{"type":"MODIFIED","object":{}}`)
	go func() { _, _ = pw.Write(event) }()
	read := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		read <- buf[:n]
	}()
	select {
	case got := <-read:
		if !bytes.Equal(got, event) {
			t.Fatalf("read %q, want %q", got, event)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read of a lone event did not return: the buffer holds it back")
	}
	_ = resp.Body.Close()
}

// TestOnlyWatchBodiesBuffered: reads, failed watches and errors pass
// through untouched.
func TestOnlyWatchBodiesBuffered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		url    string
		status int
	}{
		{"get", "https://api/api/v1/namespaces/a/configmaps/b", http.StatusOK},
		{"list", "https://api/api/v1/configmaps?limit=500", http.StatusOK},
		{"watch=false", "https://api/api/v1/configmaps?watch=false", http.StatusOK},
		{"refused watch", "https://api/api/v1/configmaps?watch=true", http.StatusForbidden},
	} {
		body := io.NopCloser(bytes.NewReader(nil))
		resp, err := bufferWatch(response(t, tc.url, tc.status, body), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Body != body {
			t.Errorf("%s: body wrapped (%T), want it as it was", tc.name, resp.Body)
		}
	}
	failed := errors.New("connection refused")
	if resp, err := bufferWatch(nil, failed); resp != nil || err != failed {
		t.Errorf("a failed round trip: got %v, %v; want nil, %v", resp, err, failed)
	}
}
