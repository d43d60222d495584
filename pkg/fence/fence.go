package fence

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Token is a fencing token: it names one hold of one Lease. The holds of
// one Lease get growing terms (a leadership Lease's spec.leaseTransitions,
// a shard record's move count), so a receiver that keeps the highest term
// per Lease can refuse a stale holder. Tokens of different Leases are not
// comparable. The zero Token names no hold.
type Token struct {
	Namespace, Lease string
	// Term grows with every hold of the Lease.
	Term int64
}

// String is the token as a header value: "<namespace>/<lease>/<term>".
func (t Token) String() string { return fmt.Sprintf("%s/%s/%d", t.Namespace, t.Lease, t.Term) }

// Newer reports whether t supersedes other: the same Lease, a higher term.
func (t Token) Newer(other Token) bool {
	return t.Namespace == other.Namespace && t.Lease == other.Lease && t.Term > other.Term
}

// IsZero reports whether t names no hold.
func (t Token) IsZero() bool { return t == Token{} }

// Hold is a right to write that ends.
type Hold interface {
	// Token is the hold's fencing token; the zero Token when the hold has
	// none to show (a shard member's own Lease).
	Token() Token
	// Deadline is nil while the hold allows writes, with the instant no
	// write of it may still be in flight; otherwise an error that matches
	// ErrFenced (an *Error).
	Deadline() (time.Time, error)
}

var (
	// ErrFenced is matched (errors.Is) by every refusal of a write because
	// its hold ended or lapsed.
	ErrFenced = errors.New("fence: write refused")

	// ErrNoHold refuses a mutating request whose context carries no hold,
	// sent by a transport that has no fallback: leader-only calls must use
	// the handler's context, or one derived from it.
	ErrNoHold = fmt.Errorf("%w: the request's context carries no hold (leadership term or shard): call with the handler's context, or one derived from it", ErrFenced)
)

// Error is the refusal of a write whose hold does not allow it now. It
// matches ErrFenced.
type Error struct {
	// Lease is the "namespace/name" of the Lease the hold rests on.
	Lease string
	// SinceRenew is the time since the last successful renew was sent, or
	// a negative value when this replica never renewed the Lease.
	SinceRenew time.Duration
	// RenewDeadline is the configured renew deadline (0: not a matter of
	// time).
	RenewDeadline time.Duration
	// Reason says why the hold does not allow writes.
	Reason string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("fence: write refused: this replica may not hold lease %s (%s", e.Lease, e.Reason)
	if e.SinceRenew >= 0 {
		msg += fmt.Sprintf("; last renewed by this replica %v ago", e.SinceRenew.Round(time.Millisecond))
	} else if e.RenewDeadline > 0 {
		msg += "; never renewed by this replica"
	}
	if e.RenewDeadline > 0 {
		msg += fmt.Sprintf(", renew deadline %v", e.RenewDeadline)
	}
	return msg + ")"
}

// Is makes errors.Is(err, ErrFenced) hold.
func (e *Error) Is(target error) bool { return target == ErrFenced }

type holdKey struct{}

type unfencedKey struct{}

// WithHold returns ctx carrying h: requests sent with it pass Transport
// under h. pkg/start gives every handler such a context.
func WithHold(ctx context.Context, h Hold) context.Context {
	return context.WithValue(ctx, holdKey{}, h)
}

// HoldFrom returns the hold ctx carries, and false for a context that
// carries none (election off, or a context that is not a handler's).
func HoldFrom(ctx context.Context) (Hold, bool) {
	h, ok := ctx.Value(holdKey{}).(Hold)
	return h, ok
}

// TokenFrom returns the token of the hold ctx carries, and false when it
// carries none or the hold has no token: for systems that are not HTTP,
// which should keep the highest token per resource and refuse lower ones.
func TokenFrom(ctx context.Context) (Token, bool) {
	h, ok := HoldFrom(ctx)
	if !ok {
		return Token{}, false
	}
	tok := h.Token()
	return tok, !tok.IsZero()
}

// Unfenced marks ctx as belonging to a replica that runs without election
// (pkg/start with leader election off): Transport passes its requests
// unchanged. A hold in ctx still counts.
func Unfenced(ctx context.Context) context.Context {
	return context.WithValue(ctx, unfencedKey{}, true)
}

// Fixed is a Hold that always allows writes and shows tok: for tests of
// code that passes tokens on (pkg/generic/fake gives handlers one).
func Fixed(tok Token) Hold { return fixed(tok) }

type fixed Token

func (f fixed) Token() Token                 { return Token(f) }
func (f fixed) Deadline() (time.Time, error) { return time.Time{}, nil }
