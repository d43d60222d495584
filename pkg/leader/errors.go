package leader

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var (
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
