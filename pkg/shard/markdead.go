package shard

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// markDeadLocked marks each member Lease that has not changed for its
// recorded lease duration (by this replica's clock) dead. It returns the
// time until the next countdown ends.
func (p *protocol) markDeadLocked(ctx context.Context) time.Duration {
	next := time.Duration(1<<62 - 1)
	now := p.clock.Now()
	for _, s := range p.sortedView() {
		l := s.lease
		if l.Labels[LabelRole] != roleMember || stateOf(l) == stateDead || l.UID == p.self.lease.UID {
			continue
		}
		left := time.Duration(durationOf(l))*time.Second - now.Sub(s.changedAt)
		if left > 0 {
			next = min(next, left)
			continue
		}
		marked := l.DeepCopy()
		if marked.Annotations == nil {
			marked.Annotations = map[string]string{}
		}
		marked.Annotations[AnnotationState] = stateDead
		out, err := p.store.Update(ctx, marked)
		switch {
		case err == nil:
			p.observeLocked(out, false)
			p.log.WithField("member", *l.Spec.HolderIdentity).Warnf("member not renewed for %v: marked dead; its shards move", now.Sub(s.changedAt).Round(time.Millisecond))
			p.emit(event{Shard: -1, Kind: "marked-dead", Peer: *l.Spec.HolderIdentity})
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			// It renewed, left or was marked meanwhile: the watch shows it.
		default:
			p.failedLocked()
			p.log.WithError(err).Warn("cannot mark a silent member dead; retrying")
		}
	}
	return next
}
