package netfault

import (
	"io"
	"net"
	"sync"
	"time"
)

// Balancer stands in for a Kubernetes Service in front of several
// replicas: it forwards each TCP connection to the first backend, in its
// order, that accepts one. A killed replica refuses connections at once,
// as a pod whose endpoint the Service dropped, so new connections go to
// the next. Each direction of a connection ends the way the other side
// ended it (a close as a close, an error as a reset), as the two ends
// would see each other without the balancer.
type Balancer struct {
	l        net.Listener
	mu       sync.Mutex
	backends []string
	wg       sync.WaitGroup
	conns    sync.Map // net.Conn → struct{}
}

// NewBalancer listens on a free loopback port, with no backend yet
// (connections are reset until SetBackends).
func NewBalancer() (*Balancer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Balancer{l: l}
	b.wg.Go(b.accept)
	return b, nil
}

// Addr is where the balancer listens.
func (b *Balancer) Addr() string { return b.l.Addr().String() }

// SetBackends replaces the backends, in the order they are tried.
func (b *Balancer) SetBackends(addrs ...string) {
	b.mu.Lock()
	b.backends = append([]string(nil), addrs...)
	b.mu.Unlock()
}

// AddBackend appends a backend.
func (b *Balancer) AddBackend(addr string) {
	b.mu.Lock()
	b.backends = append(b.backends, addr)
	b.mu.Unlock()
}

func (b *Balancer) accept() {
	for {
		in, err := b.l.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() { b.forward(in) })
	}
}

func (b *Balancer) forward(in net.Conn) {
	b.conns.Store(in, struct{}{})
	defer func() { b.conns.Delete(in); _ = in.Close() }()
	b.mu.Lock()
	backends := b.backends
	b.mu.Unlock()
	var out net.Conn
	for _, addr := range backends {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			out = c
			break
		}
	}
	if out == nil {
		resetConn(in) // as a Service with no endpoint left
		return
	}
	b.conns.Store(out, struct{}{})
	defer func() { b.conns.Delete(out); _ = out.Close() }()
	pipe := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err != nil {
			resetConn(in)
			resetConn(out)
			return
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { pipe(out, in) })
	wg.Go(func() { pipe(in, out) })
	wg.Wait()
}

// resetConn closes c with a reset (RST) instead of a close (FIN).
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// Close stops listening, closes every connection and waits for the
// balancer's goroutines.
func (b *Balancer) Close() error {
	err := b.l.Close()
	b.conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
	b.wg.Wait()
	return err
}
