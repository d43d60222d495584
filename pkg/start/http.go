package start

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/promreg"
)

// probeServers serve /metrics, /healthz and /readyz, and pprof, on the
// addresses of Options (metrics and probes on one server when their
// addresses are equal and /metrics is plain HTTP). Listeners are bound in
// New so that an address in use fails the replica before anything runs.
type probeServers struct {
	metrics, probes, pprof *http.Server
	probesOnMetrics        bool // /healthz and /readyz are served by metrics
	metricsSecure          bool // /metrics is HTTPS, each scrape reviewed
	listeners              map[*http.Server]net.Listener
	wg                     sync.WaitGroup
}

func disabled(addr string) bool { return addr == "" || addr == "0" }

// check is one named check of /healthz or /readyz; nil is an error naming
// what is wrong.
type check struct {
	name string
	run  func(*http.Request) error
}

// ping is the check that always passes, so that an endpoint always lists
// one (Kubernetes' components have it too).
var ping = check{name: "ping", run: func(*http.Request) error { return nil }}

// probeChecks are what /healthz and /readyz run, in order; readyDetail
// adds lines to /readyz (which shards a sharded replica holds).
type probeChecks struct {
	health, ready []check
	readyDetail   func() string
}

func newProbeServers(o Options, log *logrus.Entry, checks probeChecks) (_ *probeServers, err error) {
	p := &probeServers{listeners: map[*http.Server]net.Listener{}}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	bind := func(flag, addr string, h http.Handler, tlsConfig *tls.Config) (*http.Server, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w", flag, addr, err)
		}
		if tlsConfig != nil {
			l = tls.NewListener(l, tlsConfig)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		p.listeners[srv] = l
		return srv, nil
	}
	addProbes := func(m *http.ServeMux) {
		m.Handle("/healthz", serveChecks("healthz", checks.health, nil))
		m.Handle("/readyz", serveChecks("readyz", checks.ready, checks.readyDetail))
	}

	if !disabled(o.MetricsBindAddress) {
		m := http.NewServeMux()
		var metrics http.Handler = promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})
		var tlsConfig *tls.Config
		if o.MetricsSecure {
			auth, err := newScrapeAuth(o.Config, log)
			if err != nil {
				return nil, err
			}
			if tlsConfig, err = metricsTLS(o.MetricsCertDir, log); err != nil {
				return nil, err
			}
			if tlsConfig.GetCertificate != nil {
				// The certificate of --metrics-cert-dir, which someone
				// must renew. Not the self-signed one: it lives as long
				// as the process, and no scraper verifies it anyway.
				if _, err := promreg.Register(o.Registry, certs.ExpiryCollector("metrics", tlsConfig.GetCertificate)); err != nil {
					return nil, err
				}
			}
			metrics = auth.wrap(metrics)
			p.metricsSecure = true
		} else if o.HealthProbeBindAddress == o.MetricsBindAddress {
			// Never beside a secure /metrics: the kubelet's probes
			// carry no token (validate refuses the pair).
			addProbes(m)
			p.probesOnMetrics = true
		}
		m.Handle("/metrics", metrics)
		if p.metrics, err = bind("metrics-bind-address", o.MetricsBindAddress, m, tlsConfig); err != nil {
			return nil, err
		}
	}
	if !disabled(o.HealthProbeBindAddress) && !p.probesOnMetrics {
		m := http.NewServeMux()
		addProbes(m)
		if p.probes, err = bind("health-probe-bind-address", o.HealthProbeBindAddress, m, nil); err != nil {
			return nil, err
		}
	}
	if !disabled(o.PprofBindAddress) {
		// A mux of its own: the handlers serve nowhere else (importing
		// net/http/pprof also puts them on http.DefaultServeMux, which
		// rein never serves).
		m := http.NewServeMux()
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
		m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if p.pprof, err = bind("pprof-bind-address", o.PprofBindAddress, m, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// serveChecks answers an endpoint (healthz, readyz) with its checks, the
// way Kubernetes' components do: "ok" when every check passes; with
// ?verbose, or when one fails (then with 503), a line per check, "[+]name
// ok" or "[-]name failed: error", and "<endpoint> check passed" or
// "failed". detail, if any, adds lines before that last one.
func serveChecks(endpoint string, checks []check, detail func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, verbose := req.URL.Query()["verbose"]
		var lines strings.Builder
		failed := false
		for _, c := range checks {
			if err := c.run(req); err != nil {
				failed = true
				// A check's line starts with "[": an error of several
				// lines (joined errors, the rbac check's YAML to add)
				// goes on indented lines under it, readable and pastable.
				fmt.Fprintf(&lines, "[-]%s failed: %s\n", c.name, strings.ReplaceAll(strings.TrimRight(err.Error(), "\n"), "\n", "\n    "))
			} else {
				fmt.Fprintf(&lines, "[+]%s ok\n", c.name)
			}
		}
		var out strings.Builder
		switch {
		case failed || verbose:
			out.WriteString(lines.String())
		default:
			out.WriteString("ok\n")
		}
		if detail != nil {
			if d := detail(); d != "" {
				out.WriteString(d + "\n")
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		switch {
		case failed:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(&out, "%s check failed\n", endpoint)
		case verbose:
			fmt.Fprintf(&out, "%s check passed\n", endpoint)
		}
		_, _ = w.Write([]byte(out.String()))
	})
}

func (p *probeServers) serve(log *logrus.Entry) {
	for srv, l := range p.listeners {
		p.wg.Go(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.WithError(err).Error("probe/metrics/pprof server stopped")
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

func (p *probeServers) pprofAddr() string { return addrOf(p, p.pprof) }

func (p *probeServers) probeAddr() string {
	if p.probesOnMetrics {
		return addrOf(p, p.metrics)
	}
	return addrOf(p, p.probes)
}
