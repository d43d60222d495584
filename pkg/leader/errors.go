package leader

import (
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var (
	// ErrFenced is matched (errors.Is) by every error the fence returns:
	// the write was refused before it left the process because this
	// replica may not be leading any more.
	ErrFenced = errors.New("leader: fenced")

	// ErrLeadershipLost is matched by Term.Err when the term ended because
	// another replica took the lease, the lease was deleted, or renewing it
	// failed until RenewDeadline passed; and by Release when the lease is
	// no longer this replica's to release.
	ErrLeadershipLost = errors.New("leadership lost")

	// ErrCampaignInProgress is returned by Campaign while another Campaign
	// or a term of the same Elector is live.
	ErrCampaignInProgress = errors.New("leader: Campaign called while another Campaign or a term of this Elector is live")
)

// requiredVerbs are the RBAC verbs on leases the elector uses: list and
// watch (standby), create (first election), update (acquire, renew,
// release) and get (renew after a conflict).
const requiredVerbs = "get, list, watch, create, update"

// ForbiddenError is a 403 from the apiserver on the lease, restated so that
// whoever reads it knows which permission to grant. It wraps the apiserver's
// error, so apierrors.IsForbidden still holds.
type ForbiddenError struct {
	Verb, Namespace, Name string
	Err                   error
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("cannot %s leases.coordination.k8s.io %q in namespace %q: RBAC must allow %s on leases (apiGroup coordination.k8s.io) in namespace %q: %v",
		e.Verb, e.Name, e.Namespace, requiredVerbs, e.Namespace, e.Err)
}

func (e *ForbiddenError) Unwrap() error { return e.Err }

// explain names the operation and the lease in err, and restates a 403 as a
// ForbiddenError.
func (e *Elector) explain(verb string, err error) error {
	if err == nil {
		return nil
	}
	if apierrors.IsForbidden(err) {
		return &ForbiddenError{Verb: verb, Namespace: e.namespace, Name: e.name, Err: err}
	}
	return fmt.Errorf("%s lease %s: %w", verb, e.key, err)
}

// FencedError is the error of a write the fence refused. It matches
// ErrFenced.
type FencedError struct {
	// Lease is "namespace/name".
	Lease string
	// SinceRenew is the time since the last successful renew was sent, or
	// a negative value when this elector never renewed the lease.
	SinceRenew time.Duration
	// RenewDeadline is the configured renew deadline.
	RenewDeadline time.Duration
	// Reason says why the fence is closed.
	Reason string
}

func (e *FencedError) Error() string {
	last := "never renewed by this replica"
	if e.SinceRenew >= 0 {
		last = fmt.Sprintf("last renewed by this replica %v ago", e.SinceRenew.Round(time.Millisecond))
	}
	return fmt.Sprintf("leader: write refused: this replica may not be the leader of lease %s (%s; %s, renew deadline %v)",
		e.Lease, e.Reason, last, e.RenewDeadline)
}

// Is makes errors.Is(err, ErrFenced) hold.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }
