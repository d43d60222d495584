package hypervisor_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

// waitTimeout bounds every poll for an asynchronous transition.
const waitTimeout = 10 * time.Second

// fast is the Transition of the tests that watch transitions happen.
const fast = 20 * time.Millisecond

// env is a Server behind an httptest.Server, with a Client.
type env struct {
	t   *testing.T
	dir string
	srv *hypervisor.Server
	hs  *httptest.Server
	c   *hypervisor.Client
}

func quietLogger() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// start starts a Server with cfg (in a new temporary DataDir if cfg has
// none); it is stopped at the end of the test.
func start(t *testing.T, cfg hypervisor.Config) *env {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	srv, err := hypervisor.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	e := &env{t: t, dir: cfg.DataDir, srv: srv, hs: hs, c: hypervisor.NewClient(hs.URL, hs.Client())}
	t.Cleanup(e.stop)
	return e
}

// stop closes the HTTP server and the Server; it may be called again.
func (e *env) stop() {
	e.hs.Close()
	if err := e.srv.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
}

// restart stops e and starts a Server on the same DataDir with cfg.
func (e *env) restart(cfg hypervisor.Config) *env {
	e.t.Helper()
	e.stop()
	cfg.DataDir = e.dir
	return start(e.t, cfg)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return c
}

// waitState polls VM id until it is in state want, failing the test at
// the deadline.
func (e *env) waitState(id string, want hypervisor.State) *hypervisor.VM {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		vm, err := e.c.Get(context.Background(), id)
		if err != nil {
			e.t.Fatalf("Get(%s): %v", id, err)
		}
		if vm.State == want {
			return vm
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("vm %s: state %s after %v, want %s", id, vm.State, waitTimeout, want)
		}
		<-tick.C
	}
}

func (e *env) create(req hypervisor.CreateRequest) *hypervisor.VM {
	e.t.Helper()
	vm, err := e.c.Create(ctx(e.t), req)
	if err != nil {
		e.t.Fatalf("Create(%+v): %v", req, err)
	}
	return vm
}

func (e *env) setPower(id string, p hypervisor.Power) *hypervisor.VM {
	e.t.Helper()
	vm, err := e.c.SetPower(ctx(e.t), id, p)
	if err != nil {
		e.t.Fatalf("SetPower(%s, %s): %v", id, p, err)
	}
	return vm
}

// stats returns the VM counts (the fencing counters zeroed: the tests of
// fencing read them with fencingStats).
func (e *env) stats() hypervisor.Stats {
	e.t.Helper()
	st := e.fencingStats()
	st.Fencing = hypervisor.FencingStats{}
	return st
}

func (e *env) fencingStats() hypervisor.Stats {
	e.t.Helper()
	st, err := e.c.Stats(ctx(e.t))
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	return *st
}

func req(token string) hypervisor.CreateRequest {
	return hypervisor.CreateRequest{Token: token, Name: "vm-of-" + token, CPU: 2, MemoryMiB: 2048, Image: "ubuntu-24.04"}
}

// apiError returns err as *hypervisor.Error, failing the test if it is not.
func apiError(t *testing.T, err error) *hypervisor.Error {
	t.Helper()
	var e *hypervisor.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *hypervisor.Error", err, err)
	}
	return e
}

func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	e := apiError(t, err)
	if e.Status != status || e.Code != code {
		t.Fatalf("error %v: status %d code %q, want %d %q", err, e.Status, e.Code, status, code)
	}
}
