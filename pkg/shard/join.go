package shard

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// joinWhenReadyLocked joins once a retry period has passed since the last
// try and the view is current. It reports whether this replica is a member
// now, and otherwise when to try again.
func (p *protocol) joinWhenReadyLocked(ctx context.Context) (retry time.Duration, joined bool) {
	if wait := p.cfg.RetryPeriod - p.clock.Since(p.self.lastJoinTry); !p.self.lastJoinTry.IsZero() && wait > 0 {
		return wait, false
	}
	if !p.synced || !p.healthy {
		// Join with a current view only: after a partition the
		// watch resumes first (the workers' caches share its
		// connection), and the view must show what this replica
		// held before.
		return p.cfg.RetryPeriod, false
	}
	p.self.lastJoinTry = p.clock.Now()
	p.joinLocked(ctx)
	if p.self.lease == nil {
		return p.cfg.RetryPeriod, false
	}
	return 0, true
}

func (p *protocol) memberLease() *coordinationv1.Lease {
	now := metav1.NowMicro()
	secs := int32(p.cfg.LeaseDuration / time.Second)
	id := p.cfg.Identity
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.cfg.Namespace, Name: MemberLeaseName(p.cfg.Group, p.cfg.Identity),
			Labels: map[string]string{LabelGroup: p.cfg.Group, LabelRole: roleMember},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}
}

// join creates this replica's member Lease: a new incarnation. A Lease of
// an earlier incarnation in its place is deleted first (preconditions).
func (p *protocol) joinLocked(ctx context.Context) {
	sent := p.clock.Now()
	l, err := p.store.Create(ctx, p.memberLease())
	switch {
	case err == nil:
		p.self.lease, p.self.lastRenewSent, p.self.lastRenewTry = l, sent, sent
		p.publishFenceLocked()
		p.self.leavingWritten = false
		p.observeLocked(l, false)
		p.log.WithField("uid", l.UID).Info("joined the shard group")
	case apierrors.IsAlreadyExists(err):
		old, gerr := p.store.Get(ctx, MemberLeaseName(p.cfg.Group, p.cfg.Identity))
		if gerr != nil {
			p.log.WithError(gerr).Warn("cannot read this replica's old member lease; retrying")
			return
		}
		if derr := p.store.Delete(ctx, old.Name, string(old.UID), old.ResourceVersion); derr != nil && !apierrors.IsNotFound(derr) {
			p.log.WithError(derr).Warn("cannot delete this replica's old member lease; retrying")
		}
	default:
		p.log.WithError(err).Warn("cannot create this replica's member lease; retrying")
	}
}
