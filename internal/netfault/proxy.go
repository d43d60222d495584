package netfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// Direction selects which way Hold holds bytes.
type Direction int

const (
	// Both holds bytes in both directions.
	Both Direction = iota
	// Upstream holds only what clients send: the process still receives
	// (watch events, answers to requests sent before), but nothing it
	// sends arrives until Release.
	Upstream
)

// Proxy forwards TCP connections from its loopback address to a target.
// Its methods are safe for concurrent use.
type Proxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	held   Direction
	open   chan struct{} // closed while bytes flow; a fresh one while held
	conns  map[net.Conn]struct{}
	closed chan struct{}
	wg     sync.WaitGroup

	heldBytes atomic.Int64 // sent by clients, not yet delivered
	heldSeen  chan struct{}
	heldOnce  *sync.Once
	// trigger, set by HoldFrom, holds only the connections on which a
	// client chunk it matches was sent, from that chunk on.
	trigger func(chunk []byte) bool
}

// Start listens on 127.0.0.1 and forwards to target: host:port, or a URL
// such as a rest.Config's Host ("https://127.0.0.1:6443/").
func Start(target string) (*Proxy, error) {
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("netfault: target %q: %w", target, err)
		}
		target = u.Host
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("netfault: target %q: %w", target, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	open := make(chan struct{})
	close(open)
	p := &Proxy{l: l, target: target, open: open, conns: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

func (p *Proxy) accept() {
	for {
		conn, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = conn.Close()
			continue
		}
		p.conns[conn] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(conn) })
	}
}

func (p *Proxy) serve(client net.Conn) {
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(client)
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = upstream.Close()
		p.drop(client)
		return
	}
	p.conns[upstream] = struct{}{}
	p.mu.Unlock()
	var both sync.WaitGroup
	both.Go(func() { p.pump(upstream, client, true) })
	both.Go(func() { p.pump(client, upstream, false) })
	both.Wait()
	p.drop(client)
	p.drop(upstream)
}

func (p *Proxy) drop(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pump copies src to dst. A reader takes bytes off src as they come (as a
// kernel would buffer them); the writer delivers them only while the gate
// for this direction is open, so a hold keeps them, in order, and a
// release delivers them, even after src has closed: its close is
// delivered last, as a FIN after the data.
func (p *Proxy) pump(dst, src net.Conn, fromClient bool) {
	chunks := make(chan []byte, 4096)
	var reader sync.WaitGroup
	defer reader.Wait()
	reader.Go(func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if fromClient {
					p.noteHeld(int64(n))
				}
				chunk := make([]byte, n) // the writer may hold it: a copy of its own
				copy(chunk, buf[:n])
				select {
				case chunks <- chunk:
				case <-p.closed:
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	connHeld := false
	for chunk := range chunks {
		if fromClient && !connHeld {
			connHeld = p.triggered(chunk)
		}
		if !p.wait(fromClient, connHeld) {
			_ = src.Close() // Close cuts it too; the reader ends
			return
		}
		_, err := dst.Write(chunk)
		if fromClient {
			p.heldBytes.Add(-int64(len(chunk)))
		}
		if err != nil {
			// The server side is gone: what is left is lost, as a reset
			// loses it; it is no longer held.
			_ = src.Close()
			for rest := range chunks { // let the reader end
				if fromClient {
					p.heldBytes.Add(-int64(len(rest)))
				}
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		_ = dst.Close()
	}
}

// noteHeld counts n bytes a client sent; while everything is held, the
// first such bytes signal AwaitHeld.
func (p *Proxy) noteHeld(n int64) {
	p.heldBytes.Add(n)
	p.mu.Lock()
	held := p.isHeldLocked() && p.trigger == nil
	seen, once := p.heldSeen, p.heldOnce
	p.mu.Unlock()
	if held && once != nil {
		once.Do(func() { close(seen) })
	}
}

// triggered reports whether chunk starts a selective hold (HoldFrom) of
// its connection, and signals AwaitHeld when it does.
func (p *Proxy) triggered(chunk []byte) bool {
	p.mu.Lock()
	match := p.trigger != nil && p.isHeldLocked() && p.trigger(chunk)
	seen, once := p.heldSeen, p.heldOnce
	p.mu.Unlock()
	if match && once != nil {
		once.Do(func() { close(seen) })
	}
	return match
}

func (p *Proxy) isHeldLocked() bool {
	select {
	case <-p.open:
		return false
	default:
		return true
	}
}

// wait blocks while bytes of this direction (of this connection, under
// HoldFrom) are held; false when the proxy closed.
func (p *Proxy) wait(fromClient, connHeld bool) bool {
	for {
		p.mu.Lock()
		open, dir, selective := p.open, p.held, p.trigger != nil
		p.mu.Unlock()
		if !fromClient && (dir == Upstream || selective) {
			return true
		}
		if selective && !connHeld {
			return true
		}
		select {
		case <-open:
			return true
		case <-p.closed:
			return false
		}
	}
}

// Hold starts a black hole in direction d: bytes are kept, in order, until
// Release. Connections stay open; new ones are accepted and held too.
func (p *Proxy) Hold(d Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isHeldLocked() {
		p.open = make(chan struct{})
	}
	p.held = d
	p.trigger = nil
	p.heldSeen, p.heldOnce = make(chan struct{}), &sync.Once{}
}

// HoldFrom starts a selective black hole: a connection on which a client
// sends a chunk that match accepts (e.g. one starting with "POST " on a
// plain HTTP/1.1 path, where a small request is one chunk) is held from
// that chunk on, in both directions' client side, until Release; other
// connections flow. AwaitHeld waits for the first such connection.
func (p *Proxy) HoldFrom(match func(chunk []byte) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isHeldLocked() {
		p.open = make(chan struct{})
	}
	p.held = Upstream
	p.trigger = match
	p.heldSeen, p.heldOnce = make(chan struct{}), &sync.Once{}
}

// Release ends a hold: what was held is delivered, then traffic flows.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isHeldLocked() {
		close(p.open)
	}
	p.heldOnce = nil
	p.trigger = nil
}

// AwaitHeld waits until a client has sent bytes during the current hold.
func (p *Proxy) AwaitHeld(ctx context.Context) error {
	p.mu.Lock()
	seen := p.heldSeen
	p.mu.Unlock()
	if seen == nil {
		return errors.New("netfault: AwaitHeld without a Hold")
	}
	select {
	case <-seen:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HeldBytes is how many bytes clients sent that have been neither
// delivered nor lost (to a server that closed the connection first).
func (p *Proxy) HeldBytes() int64 { return p.heldBytes.Load() }

// Cut closes every connection and refuses new ones until Restore; held
// bytes are lost, as a reset loses them.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore ends a cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the proxy and its connections, and waits for its goroutines.
func (p *Proxy) Close() error {
	err := p.l.Close()
	p.mu.Lock()
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
	return err
}
