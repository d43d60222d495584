package shard

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/pkg/fence"
)

// renewLocked writes the member Lease (renewTime, and the leaving mark once
// asked to leave).
func (p *protocol) renewLocked(ctx context.Context) {
	l := p.self.lease.DeepCopy()
	now := metav1.NowMicro()
	l.Spec.RenewTime = &now
	if p.self.leaving {
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[AnnotationState] = stateLeaving
	}
	sent := p.clock.Now()
	p.self.lastRenewTry = sent
	out, err := p.store.Update(ctx, l)
	switch {
	case err == nil:
		p.self.lease, p.self.lastRenewSent = out, sent
		p.publishFenceLocked()
		p.self.leavingWritten = p.self.leaving
		p.observeLocked(out, false)
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		cur, gerr := p.store.Get(ctx, l.Name)
		switch {
		case apierrors.IsNotFound(gerr):
			p.incarnationOverLocked("this replica's member lease was deleted")
		case gerr != nil:
			p.log.WithError(gerr).Warn("member lease renew conflicted and it cannot be read; retrying")
		case cur.UID != p.self.lease.UID || stateOf(cur) == stateDead:
			p.incarnationOverLocked("another replica marked this replica's member lease dead (it was not renewed for its lease duration)")
		default:
			// Our own earlier write whose answer was lost: adopt it (the
			// next renew, from it, sets the fence).
			p.self.lease = cur
		}
	default:
		p.log.WithError(err).Warn("member lease renew failed; retrying")
	}
}

// incarnationOverLocked ends this incarnation: every shard shuts at once
// (its holder may already be someone else), and the next step rejoins as
// a new incarnation (unless leaving).
func (p *protocol) incarnationOverLocked(why string) {
	if p.self.lease == nil {
		return
	}
	p.log.WithField("reason", why).Warn("this replica's membership ended; its shards stop now and it rejoins as a new member")
	p.shutAllLocked(errors.New(why))
	p.self.lease = nil
	p.self.lastRenewSent = time.Time{}
	p.publishFenceLocked()
	if p.self.leaving {
		p.self.left = true
	}
}

func (p *protocol) shutAllLocked(cause error) {
	for s := range p.shards {
		st := &p.shards[s]
		if st.phase == running || st.phase == draining {
			p.stopShardLocked(s, cause)
		}
	}
}

// publishFenceLocked hands the member's state to the fence: open from
// the send of the last successful write of this incarnation's member Lease.
func (p *protocol) publishFenceLocked() {
	if p.self.lease == nil {
		p.fence.Close("this replica is not a member of the group")
		return
	}
	p.fence.Open(p.self.lastRenewSent, fence.Token{})
}

// fenceClosedAt is when the member fence closed (or closes), for traces.
func (p *protocol) fenceClosesAtLocked() time.Time {
	if p.self.lease == nil || p.self.lastRenewSent.IsZero() {
		return time.Time{}
	}
	return p.self.lastRenewSent.Add(p.cfg.RenewDeadline)
}

func (p *protocol) fenceOpenLocked() bool {
	return p.self.lease != nil && !p.self.lastRenewSent.IsZero() && p.clock.Since(p.self.lastRenewSent) < p.cfg.RenewDeadline
}
