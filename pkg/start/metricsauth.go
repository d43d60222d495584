package start

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/certs"
)

// How long a scrape's decision is kept, by outcome: controller-runtime's
// delegating authenticator and authorizer keep an authentication a minute,
// an allowed access five and a denied one 30 s. One entry holds both
// decisions here, so an allowed scrape is kept for the shorter, a minute:
// a token revoked, or a role taken away, stops working within a minute.
const (
	scrapeAllowedTTL       = time.Minute
	scrapeForbiddenTTL     = 30 * time.Second
	scrapeUnauthorizedTTL  = 10 * time.Second
	scrapeReviewTimeout    = 10 * time.Second
	scrapeCacheSize        = 1024
	scrapeErrorLogInterval = time.Minute
)

// scrapeAuth authenticates each request to the secure /metrics with a
// TokenReview of its bearer token and authorizes it with a
// SubjectAccessReview of its user on the non-resource URL (the request's
// path, verb its method in lower case: get /metrics), as
// controller-runtime's filters.WithAuthenticationAndAuthorization does.
//
// It calls the two reviews with client-go rather than through
// k8s.io/apiserver's delegating authenticator and authorizer, which
// controller-runtime uses: those pull in k8s.io/apiserver and, with it,
// gRPC, CEL, OpenTelemetry and component-base (265 more packages, a
// binary twice the size) for two POSTs. What they add, a cache of recent
// decisions, is the map below: Prometheus scrapes every 15 to 30 s with
// the same token, and without it each scrape of each replica would cost
// the apiserver two requests. Requests that miss the cache (a flood of
// made-up tokens) go through a client of their own with client-go's
// default rate limit (5/s), so they cannot turn into a flood at the
// apiserver.
type scrapeAuth struct {
	tokens  authenticationclient.TokenReviewInterface
	reviews authorizationclient.SubjectAccessReviewInterface
	log     *logrus.Entry
	now     func() time.Time

	mu    sync.Mutex
	cache map[scrapeKey]scrapeDecision
	// lastErr and lastErrAt keep a failing review from logging at every
	// scrape.
	lastErr   string
	lastErrAt time.Time
}

// scrapeKey is a token's hash (the token itself is not kept) and the verb.
type scrapeKey struct {
	token [sha256.Size]byte
	verb  string
}

type scrapeDecision struct {
	code    int    // http.StatusOK, StatusUnauthorized or StatusForbidden
	message string // the response's body when not allowed
	expires time.Time
}

func newScrapeAuth(cfg *rest.Config, log *logrus.Entry) (*scrapeAuth, error) {
	c := rest.CopyConfig(cfg)
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("--metrics-secure: the review client: %w", err)
	}
	return &scrapeAuth{
		tokens:  cs.AuthenticationV1().TokenReviews(),
		reviews: cs.AuthorizationV1().SubjectAccessReviews(),
		log:     log,
		now:     time.Now,
		cache:   map[scrapeKey]scrapeDecision{},
	}, nil
}

// wrap serves next to the requests the apiserver authenticates and
// authorizes: no or an unknown token is 401, a user without the rule 403,
// a review that fails 500.
func (a *scrapeAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token, ok := bearerToken(req)
		if !ok {
			http.Error(w, "Unauthorized: no bearer token", http.StatusUnauthorized)
			return
		}
		d, err := a.decide(req.Context(), token, strings.ToLower(req.Method), req.URL.Path)
		if err != nil {
			a.logFailure(err)
			http.Error(w, "Internal Server Error: cannot review the request's token; the replica's log says why", http.StatusInternalServerError)
			return
		}
		if d.code != http.StatusOK {
			http.Error(w, d.message, d.code)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// bearerToken is the token of an "Authorization: Bearer <token>" header.
func bearerToken(req *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// decide returns the decision for token, verb and path: from the cache,
// else from a TokenReview and a SubjectAccessReview. An error is a review
// that could not be made; it is not kept.
func (a *scrapeAuth) decide(ctx context.Context, token, verb, path string) (scrapeDecision, error) {
	key := scrapeKey{token: sha256.Sum256([]byte(token)), verb: verb + " " + path}
	a.mu.Lock()
	d, ok := a.cache[key]
	a.mu.Unlock()
	if ok && a.now().Before(d.expires) {
		return d, nil
	}
	d, err := a.review(ctx, token, verb, path)
	if err != nil {
		return d, err
	}
	a.keep(key, d)
	return d, nil
}

func (a *scrapeAuth) review(ctx context.Context, token, verb, path string) (scrapeDecision, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeReviewTimeout)
	defer cancel()
	tr, err := a.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return scrapeDecision{}, reviewError("tokenreviews.authentication.k8s.io", err)
	}
	if !tr.Status.Authenticated {
		return scrapeDecision{code: http.StatusUnauthorized, message: "Unauthorized", expires: a.now().Add(scrapeUnauthorizedTTL)}, nil
	}
	user := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.reviews.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return scrapeDecision{}, reviewError("subjectaccessreviews.authorization.k8s.io", err)
	}
	if !sar.Status.Allowed {
		return scrapeDecision{
			code:    http.StatusForbidden,
			message: fmt.Sprintf("Forbidden: user %q may not %s %s", user.Username, verb, path),
			expires: a.now().Add(scrapeForbiddenTTL),
		}, nil
	}
	return scrapeDecision{code: http.StatusOK, expires: a.now().Add(scrapeAllowedTTL)}, nil
}

// reviewError says what the replica lacks when the apiserver refused the
// review itself.
func reviewError(resource string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("--metrics-secure: this replica may not create %s: grant its service account create on them (a ClusterRole and ClusterRoleBinding): %w", resource, err)
	}
	return fmt.Errorf("--metrics-secure: create %s: %w", resource, err)
}

// keep stores d, making room when the cache is full: first by dropping
// the entries that expired, then, if none did, one at random (the map's
// order), so that made-up tokens cannot grow it.
func (a *scrapeAuth) keep(key scrapeKey, d scrapeDecision) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= scrapeCacheSize {
		now := a.now()
		for k, v := range a.cache {
			if !now.Before(v.expires) {
				delete(a.cache, k)
			}
		}
		for k := range a.cache {
			if len(a.cache) < scrapeCacheSize {
				break
			}
			delete(a.cache, k)
		}
	}
	a.cache[key] = d
}

// logFailure logs a failed review, the same failure at most once a minute.
func (a *scrapeAuth) logFailure(err error) {
	a.mu.Lock()
	now, msg := a.now(), err.Error()
	quiet := msg == a.lastErr && now.Sub(a.lastErrAt) < scrapeErrorLogInterval
	if !quiet {
		a.lastErr, a.lastErrAt = msg, now
	}
	a.mu.Unlock()
	if !quiet {
		a.log.WithError(err).Error("a scrape of /metrics was answered 500: its token could not be reviewed")
	}
}

// metricsTLS is the TLS configuration of the secure /metrics: the pair of
// dir (reloaded when it changes), or a self-signed one made in memory when
// dir is "". HTTP/2 is not offered: a scrape needs none, and leaving it
// out takes HTTP/2's own attacks (rapid reset) off an address the pod
// network reaches (kubebuilder's projects turn it off for the same
// reason).
func metricsTLS(dir string, log *logrus.Entry) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if dir != "" {
		files, err := certs.LoadFiles(dir, "tls.crt", "tls.key", "metrics", log)
		if err != nil {
			return nil, fmt.Errorf("--metrics-cert-dir=%q: want tls.crt and tls.key there (a mounted kubernetes.io/tls Secret): %w", dir, err)
		}
		cfg.GetCertificate = files.GetCertificate
		return cfg, nil
	}
	// A year, never renewed: no client can verify this certificate
	// anyway (it is made here, and thrown away at exit), so a client that
	// accepts it skips verification, expiry included.
	pair, err := certs.SelfSigned([]string{"localhost", "127.0.0.1"}, 365*24*time.Hour, time.Now())
	if err != nil {
		return nil, fmt.Errorf("--metrics-secure: make a self-signed certificate: %w", err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	log.Info("secure /metrics serves a self-signed certificate made in memory (no --metrics-cert-dir): scrapers must skip verification (insecureSkipVerify), or give the replica a certificate with --metrics-cert-dir")
	return cfg, nil
}
