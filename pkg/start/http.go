package start

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// probeServers serve /metrics, /healthz and /readyz on the addresses of
// Options (one server when they are equal). Listeners are bound in New so
// that an address in use fails the replica before anything runs.
type probeServers struct {
	metrics, probes *http.Server
	probesOnMetrics bool // /healthz and /readyz are served by metrics
	listeners       map[*http.Server]net.Listener
	wg              sync.WaitGroup
}

func disabled(addr string) bool { return addr == "" || addr == "0" }

func newProbeServers(o Options, healthy func(*http.Request) error, ready func() (string, error)) (*probeServers, error) {
	p := &probeServers{listeners: map[*http.Server]net.Listener{}}
	metricsHandler := promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})
	mux := func() *http.ServeMux { return http.NewServeMux() }

	bind := func(flag, addr string, m *http.ServeMux) (*http.Server, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w", flag, addr, err)
		}
		srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
		p.listeners[srv] = l
		return srv, nil
	}
	addProbes := func(m *http.ServeMux) {
		m.HandleFunc("/healthz", func(w http.ResponseWriter, req *http.Request) { answer(w, "", healthy(req)) })
		m.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			detail, err := ready()
			answer(w, detail, err)
		})
	}

	var err error
	if !disabled(o.MetricsBindAddress) {
		m := mux()
		m.Handle("/metrics", metricsHandler)
		if o.HealthProbeBindAddress == o.MetricsBindAddress {
			addProbes(m)
			p.probesOnMetrics = true
		}
		if p.metrics, err = bind("metrics-bind-address", o.MetricsBindAddress, m); err != nil {
			return nil, err
		}
	}
	if !disabled(o.HealthProbeBindAddress) && o.HealthProbeBindAddress != o.MetricsBindAddress {
		m := mux()
		addProbes(m)
		if p.probes, err = bind("health-probe-bind-address", o.HealthProbeBindAddress, m); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// answer writes a probe's result: "ok" (then detail, if any) or the
// error with 503.
func answer(w http.ResponseWriter, detail string, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, err)
		if detail != "" {
			_, _ = fmt.Fprintln(w, detail)
		}
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
	if detail != "" {
		_, _ = fmt.Fprintln(w, detail)
	}
}

func (p *probeServers) serve(log *logrus.Entry) {
	for srv, l := range p.listeners {
		p.wg.Go(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.WithError(err).Error("probe/metrics server stopped")
			}
		})
	}
}

func (p *probeServers) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for srv := range p.listeners {
		_ = srv.Shutdown(ctx)
	}
	p.wg.Wait()
}

// close releases listeners that were bound but never served.
func (p *probeServers) close() {
	for _, l := range p.listeners {
		_ = l.Close()
	}
}

func addrOf(p *probeServers, srv *http.Server) string {
	if srv == nil {
		return ""
	}
	return p.listeners[srv].Addr().String()
}

func (p *probeServers) metricsAddr() string { return addrOf(p, p.metrics) }

func (p *probeServers) probeAddr() string {
	if p.probesOnMetrics {
		return addrOf(p, p.metrics)
	}
	return addrOf(p, p.probes)
}
