package connhealth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"
	"k8s.io/client-go/rest"
)

// Timeouts derives the HTTP/2 health check from lease timings: a ping after
// retryPeriod without a read, and a ping timeout that ends within the
// renew deadline (half of what the ping leaves of it, at least 100 ms).
// The dead connection is closed at most readIdle + ping after its last
// read.
func Timeouts(renewDeadline, retryPeriod time.Duration) (readIdle, ping time.Duration) {
	readIdle = retryPeriod
	ping = max((renewDeadline-retryPeriod)/2, 100*time.Millisecond)
	return readIdle, ping
}

// Config returns a copy of cfg whose HTTP/2 connections send a ping after
// readIdle without a read, and are closed when the ping is not answered
// within ping. Authentication, TLS, the user agent, impersonation and
// cfg's own transport wrappers carry over. A cfg with its own Transport,
// or without TLS (HTTP/2 needs it here), is returned as it is: rein
// cannot reach into a transport it did not build.
func Config(cfg *rest.Config, readIdle, ping time.Duration) (*rest.Config, error) {
	if readIdle <= 0 || ping <= 0 {
		return nil, errors.New("connhealth: readIdle and ping must be positive")
	}
	if cfg.Transport != nil {
		return rest.CopyConfig(cfg), nil
	}
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("connhealth: TLS: %w", err)
	}
	if tlsConfig == nil {
		return rest.CopyConfig(cfg), nil // plain HTTP: HTTP/1.1, nothing to ping
	}
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	proxy := http.ProxyFromEnvironment
	if cfg.Proxy != nil {
		proxy = cfg.Proxy
	}
	// The values client-go's transport has (SetTransportDefaults), but for
	// the health check.
	base := &http.Transport{
		Proxy:               proxy,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 25,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         dial,
		DisableCompression:  cfg.DisableCompression,
	}
	h2, err := http2.ConfigureTransports(base)
	if err != nil {
		return nil, fmt.Errorf("connhealth: HTTP/2: %w", err)
	}
	h2.ReadIdleTimeout, h2.PingTimeout = readIdle, ping
	rt, err := rest.HTTPWrappersForConfig(cfg, base)
	if err != nil {
		return nil, fmt.Errorf("connhealth: %w", err)
	}
	out := rest.CopyConfig(cfg)
	out.Transport = rt
	// What the wrappers and the transport now do must not be done twice
	// (client-go refuses TLS files beside a Transport).
	out.TLSClientConfig = rest.TLSClientConfig{}
	out.BearerToken, out.BearerTokenFile, out.Username, out.Password = "", "", "", ""
	out.Impersonate = rest.ImpersonationConfig{}
	out.AuthProvider, out.AuthConfigPersister, out.ExecProvider = nil, nil, nil
	out.WrapTransport, out.Dial, out.Proxy = nil, nil, nil
	return out, nil
}
