package shard

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
)

// handOffLocked moves s from this replica to to ("" releases it): stop
// taking keys, let the ones in flight finish (DrainGrace at most), shut,
// wait out any request cut off in the network, then write the record. It
// returns when to look again, and the write once it is due.
func (p *protocol) handOffLocked(s int, rec *coordinationv1.Lease, to incarnation) (time.Duration, *recordWrite) {
	st := &p.shards[s]
	now := p.clock.Now()
	if st.phase == running {
		st.phase, st.drainFrom = draining, now
		p.gates.stopTaking(s)
	}
	if st.phase == draining {
		if p.gates.inflight(s) > 0 && now.Sub(st.drainFrom) < p.cfg.DrainGrace {
			return p.cfg.DrainGrace - now.Sub(st.drainFrom), nil // drained() wakes the step sooner
		}
		p.stopShardLocked(s, fmt.Errorf("shard %d moves to %s", s, to))
	}
	if wait := st.inNetworkUntil.Sub(now); wait > 0 {
		return wait, nil
	}
	return p.cfg.RetryPeriod, p.moveRecordLocked(s, rec, to, "hand the shard off", func(*coordinationv1.Lease) {
		p.log.WithFields(logrus.Fields{"shard": s, "to": to.identity}).Info("shard handed off")
	})
}

// stopShardLocked shuts s here and forgets it (its record may still name
// this incarnation: the next step decides).
func (p *protocol) stopShardLocked(s int, cause error) {
	st := &p.shards[s]
	now := p.clock.Now()
	st.inNetworkUntil = p.gates.shut(s, cause)
	st.shutAt = now
	if p.trace != nil {
		// Writes stopped at the shut, or earlier when the member fence
		// closed first (the guard reads the clock).
		end := now
		if c := p.fenceClosesAtLocked(); !c.IsZero() && c.Before(end) {
			end = c
		}
		p.trace(s, false, end)
	}
	held := now.Sub(st.startedAt)
	st.phase = idle
	p.emit(event{Shard: s, Kind: "stopped", Held: held})
	p.stopped = append(p.stopped, s)
}
