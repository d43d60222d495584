package shard

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// startShardLocked opens s here: its keys are queued, its writes pass.
func (p *protocol) startShardLocked(s int, rec *coordinationv1.Lease) {
	st := &p.shards[s]
	now := p.clock.Now()
	unowned := time.Duration(0)
	if !st.orphanSince.IsZero() {
		unowned = now.Sub(st.orphanSince)
	}
	st.phase, st.startedAt, st.orphanSince = running, now, time.Time{}
	p.gates.open(s, transitionsOf(rec))
	if p.trace != nil {
		p.trace(s, true, p.clock.Now())
	}
	p.emit(event{Shard: s, Kind: "started", Held: unowned})
	p.started = append(p.started, s)
}

// takeStopped returns the shards stopped since its last call.
func (p *protocol) takeStopped() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.stopped
	p.stopped = nil
	return out
}

// takeStarted returns the shards started since its last call.
func (p *protocol) takeStarted() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.started
	p.started = nil
	return out
}
