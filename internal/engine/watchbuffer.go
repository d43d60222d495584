package engine

import (
	"bufio"
	"io"
	"net/http"
)

// watchReadBuffer is the read buffer of a watch stream's body.
const watchReadBuffer = 32 << 10

// bufferWatch puts a read buffer under the body of a watch response.
// client-go's watch decoders read a stream one event at a time, often a
// frame of a kilobyte or two, and Go's HTTP/2 transport answers every read
// that brings its unacknowledged bytes to 4 KiB with a flow-control window
// update: a write system call per few events. A 100,000-object watch-list
// sync spent 0.67 s of its 5 s of CPU writing them. Through a buffer each
// read takes what the transport holds, up to 32 KiB, and the updates are
// rarer. A read still returns as soon as any bytes are there: a lone event
// is not held back.
func bufferWatch(resp *http.Response, err error) (*http.Response, error) {
	if err != nil || resp == nil || resp.Body == nil || resp.StatusCode != http.StatusOK || !isWatch(resp.Request) {
		return resp, err
	}
	resp.Body = &bufferedBody{Reader: bufio.NewReaderSize(resp.Body, watchReadBuffer), body: resp.Body}
	return resp, nil
}

// isWatch tells a watch request (watch=true, or 1) from a read.
func isWatch(req *http.Request) bool {
	if req == nil || req.URL == nil {
		return false
	}
	w := req.URL.Query().Get("watch")
	return w == "true" || w == "1"
}

// bufferedBody reads a response body through a buffer and closes the body.
type bufferedBody struct {
	*bufio.Reader
	body io.ReadCloser
}

func (b *bufferedBody) Close() error { return b.body.Close() }
