package shard

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	moved := moveRecord(rec, to)
	return p.cfg.RetryPeriod, &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Update(ctx, moved) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				p.observeLocked(out, false)
				p.log.WithFields(logrus.Fields{"shard": s, "to": to.identity}).Info("shard handed off")
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
				// The record changed under this replica's view: the watch shows how.
			case isAPIStatus(err):
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("cannot hand the shard off; retrying")
			default:
				p.failedLocked()
				st.phase, st.unknownAt = unknown, transitionsOf(rec)
			}
		},
	}
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
}
