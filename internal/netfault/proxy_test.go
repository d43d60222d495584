package netfault

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer answers every line with the same line, and reports each line
// it received on got.
func echoServer(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					lines <- line
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return l.Addr().String(), lines
}

func TestHoldDeliversLaterInOrderEvenAfterTheSenderLeft(t *testing.T) {
	target, got := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "one\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "one\n" {
		t.Fatalf("before the hold: %q %v", line, err)
	}
	<-got // "one"

	p.Hold(Upstream)
	for _, s := range []string{"two\n", "three\n"} {
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.AwaitHeld(ctx); err != nil {
		t.Fatal(err)
	}
	// The sender gives up and leaves, as a replica whose term ended does.
	_ = c.Close()
	select {
	case line := <-got:
		t.Fatalf("the server got %q during the hold", line)
	default:
	}
	if p.HeldBytes() == 0 {
		t.Fatal("nothing held")
	}
	p.Release()
	for _, want := range []string{"two\n", "three\n"} {
		select {
		case line := <-got:
			if line != want {
				t.Fatalf("after release: %q, want %q", line, want)
			}
		case <-ctx.Done():
			t.Fatalf("%q not delivered after release", want)
		}
	}
}

func TestCutRefusesUntilRestored(t *testing.T) {
	target, _ := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p.Cut()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a cut connection still reads")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c2.Read(make([]byte, 1)); err == nil {
			t.Fatal("a new connection during a cut works")
		}
		_ = c2.Close()
	}
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c3.Close() }()
	if _, err := io.WriteString(c3, "back\n"); err != nil {
		t.Fatal(err)
	}
	_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c3).ReadString('\n'); err != nil || line != "back\n" {
		t.Fatalf("after restore: %q %v", line, err)
	}
}

func TestHoldFromHoldsOnlyMatchingConnections(t *testing.T) {
	target, got := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	p.HoldFrom(func(chunk []byte) bool { return strings.HasPrefix(string(chunk), "POST ") })
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c, bufio.NewReader(c)
	}
	reads, rr := dial()
	writes, _ := dial()
	if _, err := io.WriteString(writes, "POST /x\n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.AwaitHeld(ctx); err != nil {
		t.Fatal(err)
	}
	// Another connection's GET flows meanwhile.
	if _, err := io.WriteString(reads, "GET /y\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := rr.ReadString('\n'); err != nil || line != "GET /y\n" {
		t.Fatalf("GET during a selective hold: %q %v", line, err)
	}
	if line := <-got; line != "GET /y\n" {
		t.Fatalf("the server got %q first, want the GET", line)
	}
	p.Release()
	select {
	case line := <-got:
		if line != "POST /x\n" {
			t.Fatalf("after release: %q", line)
		}
	case <-ctx.Done():
		t.Fatal("the held POST was not delivered")
	}
}
