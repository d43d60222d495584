package renewal_test

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rein-k8s/rein/internal/renewal"
	"github.com/rein-k8s/rein/pkg/fence"
)

// TestOpenedWithoutASendIsClosed: a hold whose taking write has no send
// time allows nothing.
func TestOpenedWithoutASendIsClosed(t *testing.T) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := renewal.New("ns/lease", time.Second, clocktesting.NewFakePassiveClock(epoch), "")
	r.Open(time.Time{}, fence.Token{})
	if r.Err() == nil {
		t.Fatal("a renewal opened at the zero time allows writes")
	}
}
