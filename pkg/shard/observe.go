package shard

import (
	"slices"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// observe records a Lease of the group as the watch (or a write's answer)
// shows it; deleted reports a deletion.
func (p *protocol) observe(l *coordinationv1.Lease, deleted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observeLocked(l, deleted)
}

func (p *protocol) observeLocked(l *coordinationv1.Lease, deleted bool) {
	now := p.clock.Now()
	prev := p.view[l.Name]
	if deleted {
		if prev != nil && prev.lease.UID == l.UID {
			delete(p.view, l.Name)
		}
		return
	}
	if l.Labels[LabelRole] == roleShard && prev != nil && prev.lease.UID == l.UID &&
		transitionsOf(l) <= transitionsOf(prev.lease) {
		return // late: this replica's view of a record only moves forward
	}
	if prev != nil && prev.lease.ResourceVersion == l.ResourceVersion && prev.lease.UID == l.UID {
		return
	}
	p.view[l.Name] = &seen{lease: l, changedAt: now}
	switch l.Labels[LabelRole] {
	case roleShard:
		if s, ok := recordShard(p.cfg.Group, l.Name, p.cfg.Shards); ok {
			if st := &p.shards[s]; st.phase == unknown && transitionsOf(l) > st.unknownAt {
				st.phase = idle // the record shows what happened; reconcile from it
			}
		}
	case roleMember:
		if p.self.lease != nil && l.UID == p.self.lease.UID && stateOf(l) == stateDead {
			p.incarnationOverLocked("another replica marked this replica's member lease dead (it was not renewed for its lease duration)")
		}
	}
}

// relisted replaces the view with a list's items: the watch restarted.
func (p *protocol) relisted(items []coordinationv1.Lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := map[string]bool{}
	for i := range items {
		names[items[i].Name] = true
		p.observeLocked(&items[i], false)
	}
	for name, s := range p.view {
		if !names[name] {
			p.observeLocked(s.lease, true)
		}
	}
	p.synced = true
	p.resumedLocked()
}

// resumedLocked says the watch delivers again (a list answered after a
// gap): every member's countdown restarts now, since not seeing a renew
// during a gap is no evidence of death.
func (p *protocol) resumedLocked() {
	now := p.clock.Now()
	for _, s := range p.view {
		if s.lease.Labels[LabelRole] == roleMember {
			s.changedAt = now
		}
	}
	p.healthy = true
}

// watchBroken says the watch stopped delivering.
func (p *protocol) watchBroken() {
	p.mu.Lock()
	p.healthy = false
	p.mu.Unlock()
}

func (p *protocol) sortedView() []*seen {
	out := make([]*seen, 0, len(p.view))
	for _, s := range p.view {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *seen) int {
		switch {
		case a.lease.Name < b.lease.Name:
			return -1
		case a.lease.Name > b.lease.Name:
			return 1
		}
		return 0
	})
	return out
}

func (p *protocol) record(s int) *coordinationv1.Lease {
	if v := p.view[RecordName(p.cfg.Group, s)]; v != nil {
		return v.lease
	}
	return nil
}
