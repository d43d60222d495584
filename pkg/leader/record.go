package leader

import (
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The election record lives in the Lease's spec, in the fields client-go's
// LeaseLock reads and writes: holderIdentity, leaseDurationSeconds,
// acquireTime, renewTime, leaseTransitions.

// holderOf returns the lease's holder, "" when it is released or absent.
func holderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// durationOf is how long the record's holder claims the lease after each
// change: its leaseDurationSeconds, or fallback when the record has none.
// The record's value, not this replica's configuration, is what the holder
// promised, so it is what a standby must wait (as client-go does).
func durationOf(l *coordinationv1.Lease, fallback time.Duration) time.Duration {
	if l == nil || l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds <= 0 {
		return fallback
	}
	return time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
}

// leaseSeconds is the leaseDurationSeconds this replica writes: the
// configured duration rounded UP, so that no standby ever waits less than
// this replica's fence assumes.
func leaseSeconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}

// microTime is t as it is stored in a Lease: microseconds, no monotonic
// reading. Truncating here makes the value equal to what the apiserver
// echoes back, so renewTime recognises this replica's own writes.
func microTime(t time.Time) *metav1.MicroTime {
	m := metav1.NewMicroTime(t.Truncate(time.Microsecond))
	return &m
}

// sameRecord reports whether two lease specs hold the same election record
// (at the apiserver's microsecond precision). A standby restarts its
// countdown whenever the record changes, whatever the change.
func sameRecord(a, b *coordinationv1.LeaseSpec) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// clientGoKey is the election record as a client-go LeaderElector compares
// it: client-go converts the times to metav1.Time and compares the JSON, so
// it sees acquireTime and renewTime only to the SECOND. A renew that leaves
// the record's second unchanged is invisible to a client-go standby, which
// keeps counting from the previous change; the fence must not count such a
// renew either (see Term.renewed).
func clientGoKey(s *coordinationv1.LeaseSpec) string {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	sec := func(t *metav1.MicroTime) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprint(t.Unix())
	}
	var dur, transitions int32
	if s.LeaseDurationSeconds != nil {
		dur = *s.LeaseDurationSeconds
	}
	if s.LeaseTransitions != nil {
		transitions = *s.LeaseTransitions
	}
	var strategy string
	if s.Strategy != nil {
		strategy = string(*s.Strategy)
	}
	return fmt.Sprintf("%q|%d|%s|%s|%d|%q|%q", str(s.HolderIdentity), dur, sec(s.AcquireTime), sec(s.RenewTime), transitions, strategy, str(s.PreferredHolder))
}
