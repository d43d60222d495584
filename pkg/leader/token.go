package leader

import (
	"fmt"
)

// Token is a fencing token: it names one leadership term of one Lease.
// Every acquisition of the Lease by rein increments the Lease's
// spec.leaseTransitions, and a term's token is the value its acquiring
// write stored, so the tokens of successive terms of one Lease only grow
// (see doc.go, "Fencing tokens", for what a receiving system must do).
// Tokens of different Leases are not comparable.
type Token struct {
	Namespace, Lease string
	// Term is the Lease's leaseTransitions as this term's acquiring write
	// set it.
	Term int64
}

// String is the token as a header value: "<namespace>/<lease>/<term>".
func (t Token) String() string { return fmt.Sprintf("%s/%s/%d", t.Namespace, t.Lease, t.Term) }

// Newer reports whether t supersedes other: the same Lease, a higher term.
func (t Token) Newer(other Token) bool {
	return t.Namespace == other.Namespace && t.Lease == other.Lease && t.Term > other.Term
}

// Token returns the term's fencing token.
func (t *Term) Token() Token { return t.token }
