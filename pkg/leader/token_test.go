package leader_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rein-k8s/rein/pkg/fence"

	"github.com/rein-k8s/rein/pkg/leader"
)

// TestTokensGrowWithEveryTerm: successive terms of one Lease have strictly
// increasing fencing tokens, whoever takes it and however the previous
// term ended: the same replica again after a release, another replica
// after a release, and a rein replica after a client-go elector held the
// Lease in between.
func TestTokensGrowWithEveryTerm(t *testing.T) {
	lease := leaseName(t)
	a, b := twoReplicas(t, lease, shortTimings)
	var tokens []fence.Token
	take := func(r *replica, how string) *leader.Term {
		t.Helper()
		term := r.campaign(t)
		tok := term.Token()
		if tok.Namespace != namespace || tok.Lease != lease {
			t.Fatalf("%s: token %v names another lease", how, tok)
		}
		if n := len(tokens); n > 0 && !tok.Newer(tokens[n-1]) {
			t.Fatalf("%s: token %v is not newer than the previous term's %v", how, tok, tokens[n-1])
		}
		if got := getLease(t, lease); int64(*got.Spec.LeaseTransitions) != tok.Term {
			t.Fatalf("%s: token %v, lease transitions %d", how, tok, *got.Spec.LeaseTransitions)
		}
		tokens = append(tokens, tok)
		return term
	}
	release := func(term *leader.Term) {
		t.Helper()
		if err := term.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	release(take(a, "first term (create)"))
	release(take(a, "the same replica again"))
	release(take(b, "another replica"))

	// A client-go elector takes the released lease; the rein replica
	// takes it after client-go releases it.
	cg := startClientGo(t, lease, shortTimings, a.Fence(), make(chan string, 1))
	await(t, "client-go leads", cg.started, 20*time.Second)
	cg.stop()
	take(a, "a rein replica after a client-go elector")

	var s []string
	for _, tok := range tokens {
		s = append(s, tok.String())
	}
	t.Logf("tokens: %s", strings.Join(s, ", "))
}
