package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/internal/tracing"
)

// defaultAddr is where a server listens unless Options.Addr says
// otherwise: every interface, so that the apiserver reaches the pod
// through its Service; 9443 as kubebuilder's projects.
const defaultAddr = ":9443"

// shutdownGrace is how long a stopping server lets requests in flight
// finish. An apiserver waits at most 30 s for a webhook.
const shutdownGrace = 10 * time.Second

// CertificateSource hands out a server's certificate and keeps it
// current: SecretCertificates is one. The server runs Start while it
// serves and stops it with itself.
type CertificateSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Start keeps the certificate current until ctx ends; an error it
	// returns ends the server.
	Start(ctx context.Context) error
}

// Options configure a Server. Exactly one of CertDir and Certificates
// gives its serving certificate.
type Options struct {
	// Addr is host:port to listen on; empty means ":9443". Port 0
	// picks a free one (Server.Addr tells which).
	Addr string
	// CertDir holds the serving certificate and key, CertName and KeyName
	// (default tls.crt and tls.key, the keys of a kubernetes.io/tls
	// Secret). They are loaded again when they change, so a certificate
	// renewed by cert-manager is served without a restart.
	CertDir           string
	CertName, KeyName string
	// Certificates, instead of CertDir, hands out the certificate for
	// each handshake, e.g. SecretCertificates for a cluster without
	// cert-manager.
	Certificates CertificateSource
	// Registerer receives the webhook metrics (rein_webhook_*, and
	// rein_certificate_expiration_timestamp_seconds{server="webhook"}).
	// Nil records none.
	Registerer prometheus.Registerer
	// Logger is where the server logs; nil means logrus's standard logger.
	Logger *logrus.Entry
}

// Server is the HTTPS server of a replica's webhooks. Every replica runs
// one, leader or not: admission and conversion only read, so they need no
// lease, and the apiserver may call any replica behind the Service.
type Server struct {
	addr   string
	tls    *tls.Config
	source CertificateSource // nil with CertDir
	log    *logrus.Entry
	// metrics is set by NewServer or, later, by RegisterMetrics (while
	// requests may already be served).
	metrics atomic.Pointer[metrics]

	mu       sync.Mutex
	mux      *http.ServeMux
	paths    map[string]string // path → what serves it, for errors
	listener net.Listener
	serving  bool
}

// NewServer checks opts and loads the certificate; it does not listen
// yet (Listen, Serve, or Start).
func NewServer(opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	addr := opts.Addr
	if addr == "" {
		addr = defaultAddr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("webhook: Options.Addr %q: %w (want host:port, e.g. :9443)", addr, err)
	}
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	switch {
	case opts.CertDir != "" && opts.Certificates != nil:
		return nil, errors.New("webhook: both Options.CertDir and Options.Certificates are set: choose one source of the serving certificate")
	case opts.CertDir == "" && opts.Certificates == nil:
		return nil, errors.New("webhook: no serving certificate: set Options.CertDir to the folder of tls.crt and tls.key (a mounted kubernetes.io/tls Secret), or Options.Certificates (e.g. SecretCertificates)")
	case opts.Certificates != nil:
		getCert = opts.Certificates.GetCertificate
	default:
		certName, keyName := opts.CertName, opts.KeyName
		if certName == "" {
			certName = "tls.crt"
		}
		if keyName == "" {
			keyName = "tls.key"
		}
		files, err := newCertFiles(opts.CertDir, certName, keyName, log)
		if err != nil {
			return nil, err
		}
		getCert = files.GetCertificate
	}
	m, err := newMetrics(opts.Registerer, getCert)
	if err != nil {
		return nil, err
	}
	s := &Server{
		addr:   addr,
		tls:    &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert, NextProtos: []string{"h2", "http/1.1"}},
		source: opts.Certificates,
		log:    log,
		mux:    http.NewServeMux(),
		paths:  map[string]string{},
	}
	s.metrics.Store(m)
	return s, nil
}

// RegisterMetrics registers the server's metrics (rein_webhook_*, and
// rein_certificate_expiration_timestamp_seconds{server="webhook"}) on reg
// when its Options named no Registerer; otherwise it does nothing (they
// are already recorded there). start.Run calls it with
// start.Options.Registry, so that /metrics serves them.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	if reg == nil || s.metrics.Load() != nil {
		return nil
	}
	m, err := newMetrics(reg, s.tls.GetCertificate)
	if err != nil {
		return err
	}
	s.metrics.CompareAndSwap(nil, m)
	return nil
}

// Handle serves h at path. A path is served once: a second registration
// is an error naming the first.
func (s *Server) Handle(path string, h http.Handler) error {
	return s.handle(path, "a handler", h)
}

func (s *Server) handle(path, what string, h http.Handler) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("webhook: path %q of %s must begin with /", path, what)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.paths[path]; ok {
		return fmt.Errorf("webhook: path %s of %s is already served by %s", path, what, prev)
	}
	s.paths[path] = what
	s.mux.Handle(path, h)
	return nil
}

// Listen binds the address, so that an address in use fails at once, before
// the replica goes on.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("webhook: listen on %s: %w", s.addr, err)
	}
	s.listener = l
	return nil
}

// Addr is the address listened on, once Listen succeeded ("" before).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Ready is nil once the server takes requests with a certificate, and
// says why not before.
func (s *Server) Ready() error {
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if !serving {
		return errors.New("webhook server not serving yet")
	}
	if _, err := s.tls.GetCertificate(&tls.ClientHelloInfo{}); err != nil {
		return err
	}
	return nil
}

// Start listens and serves until ctx ends (Listen, then Serve).
func (s *Server) Start(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve serves on the address Listen bound until ctx ends, then lets the
// requests in flight finish (at most 10 s) and returns nil. It returns an
// error if serving fails. Under pkg/start with tracing on, ctx carries the
// replica's tracer provider, and each request continues the caller's
// trace (the apiserver's, which sends traceparent when it traces).
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	l := s.listener
	if l == nil {
		s.mu.Unlock()
		return errors.New("webhook: Serve before Listen")
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("webhook: the server is already serving")
	}
	s.serving = true
	s.mu.Unlock()

	var handler http.Handler = s.mux
	if tp := tracing.ProviderFrom(ctx); tp != nil {
		// Each request is a server span that continues the trace its
		// traceparent names: the apiserver's, so that the span of a
		// write holds the webhook's answer to it. Named after the path
		// served (the mux's pattern), whatever path a caller sends.
		handler = tracing.Handler(s.mux, tp, func(r *http.Request) string {
			_, pattern := s.mux.Handler(r)
			return pattern
		})
	}
	srv := &http.Server{
		Handler:           handler,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests in flight when ctx ends are answered, not cut: an
		// admission request cut short fails the user's write.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(l, s.tls)) }()
	s.log.WithField("address", l.Addr().String()).Info("webhook server serving")
	// The certificate source lives as long as the server.
	sourceCtx, stopSource := context.WithCancel(ctx)
	defer stopSource()
	sourceErr := make(chan error, 1)
	sourceDone := s.source == nil // its Start returned (or there is none)
	if s.source != nil {
		go func() { sourceErr <- s.source.Start(sourceCtx) }()
	}
	var failed error
	select {
	case err := <-served:
		stopSource()
		if !sourceDone {
			<-sourceErr
		}
		s.stopped()
		return fmt.Errorf("webhook: serve on %s: %w", l.Addr(), err)
	case err := <-sourceErr:
		sourceDone = true
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("the certificate source stopped")
			}
			failed = fmt.Errorf("webhook: certificates: %w", err)
		}
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-served
	if !sourceDone {
		stopSource()
		<-sourceErr
	}
	s.stopped()
	if failed != nil {
		return failed
	}
	if err != nil {
		return fmt.Errorf("webhook: shutdown: %w", err)
	}
	return nil
}

func (s *Server) stopped() {
	s.mu.Lock()
	s.serving = false
	s.listener = nil
	s.mu.Unlock()
}
