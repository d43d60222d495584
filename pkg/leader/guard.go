package leader

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rein-k8s/rein/internal/httpdeadline"
)

// TokenHeader is the HTTP header GuardHTTP puts a term's fencing token in.
const TokenHeader = "Rein-Fencing-Token"

// ErrNoTerm is GuardHTTP's answer to a request whose context carries no
// leadership term: leader-only calls must use the handler's context.
var ErrNoTerm = errors.New("leader: the request's context carries no leadership term: call with the handler's context (or one derived from it)")

// termInfo is what a handler's context carries of its term.
type termInfo struct {
	token Token
	fence *Fence // nil when only a token was given (WithToken)
	// deadline, when set instead of fence, is the fence of another kind
	// of hold (a shard of pkg/shard): nil error while writes may pass,
	// and until when.
	deadline func() (time.Time, error)
}

type termKey struct{}

type unfencedKey struct{}

// WithTerm returns ctx carrying term's fencing token and fence; pkg/start
// gives every handler such a context.
func WithTerm(ctx context.Context, term *Term) context.Context {
	return context.WithValue(ctx, termKey{}, termInfo{token: term.token, fence: term.e.fence})
}

// WithToken returns ctx carrying tok, without a fence: for tests and for
// code that passes tokens on by other means than GuardHTTP.
func WithToken(ctx context.Context, tok Token) context.Context {
	return context.WithValue(ctx, termKey{}, termInfo{token: tok})
}

// WithFencedToken returns ctx carrying tok and a fence given as a function:
// nil error while the holder may write, with the instant it must stop.
// pkg/shard gives each shard's handlers such a context, so that GuardHTTP
// refuses their calls once the shard has moved.
func WithFencedToken(ctx context.Context, tok Token, deadline func() (time.Time, error)) context.Context {
	return context.WithValue(ctx, termKey{}, termInfo{token: tok, deadline: deadline})
}

// Unfenced marks ctx as belonging to a replica that runs without leader
// election (pkg/start with LeaderElect off): GuardHTTP passes its requests
// unchanged, with no token.
func Unfenced(ctx context.Context) context.Context {
	return context.WithValue(ctx, unfencedKey{}, true)
}

// TokenFrom returns the fencing token of ctx's term, and false outside a
// term (leader election off, or a context that is not a handler's).
func TokenFrom(ctx context.Context) (Token, bool) {
	info, ok := ctx.Value(termKey{}).(termInfo)
	return info.token, ok
}

// GuardHTTP returns a RoundTripper for leader-only calls to systems outside
// the cluster, which rein's apiserver fence cannot reach. For each request,
// by the term its context carries (a handler's context carries one):
//
//   - a mutating request (POST, PUT, PATCH, DELETE) is refused with a
//     *FencedError while the term's fence is closed: the same rule as the
//     apiserver's, so a paused or cut-off leader sends nothing;
//   - every request gets the header Rein-Fencing-Token: <namespace>/<lease>/<term>,
//     for a receiver that keeps the highest token per resource and refuses
//     lower ones (see "Fencing tokens" in the package doc);
//   - a request's deadline is cut to when the fence would close without a
//     renew, so that no request waits, or is retried, past it.
//
// A request whose context has no term fails with ErrNoTerm, unless the
// context is marked Unfenced (no election). Systems that are not HTTP get
// the token from TokenFrom and should apply the same rule.
func GuardHTTP(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &guardTransport{next: next}
}

type guardTransport struct{ next http.RoundTripper }

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	info, ok := ctx.Value(termKey{}).(termInfo)
	if !ok {
		if ctx.Value(unfencedKey{}) != nil {
			return g.next.RoundTrip(req)
		}
		return httpdeadline.Refuse(req, ErrNoTerm)
	}
	var deadline time.Time
	if info.deadline != nil {
		d, err := info.deadline()
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if err != nil {
				return httpdeadline.Refuse(req, err)
			}
		}
		if err == nil {
			deadline = d
		}
	}
	if info.fence != nil {
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if err := info.fence.Err(); err != nil {
				return httpdeadline.Refuse(req, err)
			}
		}
		if left, holding := info.fence.remaining(); holding {
			deadline = time.Now().Add(left)
		}
	}
	return httpdeadline.RoundTrip(g.next, req, deadline, func(out *http.Request) {
		out.Header.Set(TokenHeader, info.token.String())
	})
}
