package shard

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// leave asks this replica to hand every shard on and leave the group.
func (p *protocol) leave() {
	p.mu.Lock()
	p.self.leaving = true
	p.mu.Unlock()
}

// leaveLocked deletes this replica's member Lease once it holds nothing.
func (p *protocol) leaveLocked(ctx context.Context) {
	l := p.self.lease
	err := p.store.Delete(ctx, l.Name, string(l.UID), l.ResourceVersion)
	if err != nil && !apierrors.IsNotFound(err) {
		p.log.WithError(err).Warn("cannot delete this replica's member lease; it will be marked dead and collected")
	}
	p.self.left = true
	p.self.lease = nil
	p.publishFenceLocked()
	p.log.Info("left the shard group")
}

func (p *protocol) holdsNothingLocked() bool {
	me := p.me()
	for s := range p.shards {
		if p.shards[s].phase != idle || holderOf(p.record(s)) == me {
			return false
		}
	}
	return true
}

// collectLocked deletes member Leases marked dead once no record names
// them.
func (p *protocol) collectLocked(ctx context.Context) {
	named := map[string]bool{}
	for s := range p.shards {
		named[holderOf(p.record(s)).uid] = true
	}
	for _, v := range p.sortedView() {
		l := v.lease
		if l.Labels[LabelRole] != roleMember || stateOf(l) != stateDead || named[string(l.UID)] {
			continue
		}
		if p.gcTried[l.Name] == l.ResourceVersion {
			continue
		}
		p.gcTried[l.Name] = l.ResourceVersion
		if err := p.store.Delete(ctx, l.Name, string(l.UID), l.ResourceVersion); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			p.log.WithError(err).WithField("lease", l.Name).Debug("cannot delete a dead member lease")
		}
	}
}

func (p *protocol) hasLeft() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.self.left
}
