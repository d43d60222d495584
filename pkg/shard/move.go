package shard

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// moveShardsLocked converges the records on the assignment, for the moves
// this replica makes: start what it holds and is assigned, hand off what
// it holds and is not, claim free shards and the shards of dead members.
func (p *protocol) moveShardsLocked(ctx context.Context) time.Duration {
	assign, live := p.assignLocked()
	me := p.me()
	next := time.Duration(1<<62 - 1)
	now := p.clock.Now()
	var writes []recordWrite
	add := func(w *recordWrite) {
		if w != nil {
			writes = append(writes, *w)
		}
	}
	defer func() { p.writeRecordsLocked(ctx, writes) }()
	for s := range p.shards {
		st := &p.shards[s]
		rec := p.record(s)
		if st.phase == unknown {
			add(p.resolveUnknownLocked(s, rec))
			continue
		}
		if rec == nil {
			if assign[s] == me.identity {
				add(p.createRecordLocked(s))
			}
			continue
		}
		holder := holderOf(rec)
		switch {
		case holder == me:
			st.orphanSince = time.Time{}
			if assign[s] == me.identity {
				if st.phase != running {
					p.startShardLocked(s, rec)
				}
				continue
			}
			d, w := p.handOffLocked(s, rec, incarnation{identity: assign[s], uid: live[assign[s]]})
			next = min(next, d)
			add(w)
		default:
			if st.phase == running || st.phase == draining {
				// The record names another: this replica lost s (its
				// incarnation ended, or its view lagged).
				p.stopShardLocked(s, fmt.Errorf("shard %d is held by %s now", s, holder))
			}
			if holder.identity != "" && live[holder.identity] == holder.uid {
				st.orphanSince = time.Time{}
				continue // a live holder moves it itself
			}
			if st.orphanSince.IsZero() {
				st.orphanSince = now
			}
			wait := p.cfg.FallbackDelay - now.Sub(st.orphanSince)
			if assign[s] != me.identity && (wait > 0 || p.self.leaving) {
				if wait > 0 {
					next = min(next, wait)
				}
				continue
			}
			add(p.claimLocked(s, rec, holder))
		}
	}
	return next
}

// recordWrite is one write of a shard record a step makes: do sends it
// (no protocol state touched, so that writes of several shards go out
// together), then settles its outcome under the lock, in shard order (a
// record written is observed before then runs).
type recordWrite struct {
	do   func(ctx context.Context) (*coordinationv1.Lease, error)
	then func(out *coordinationv1.Lease, err error)
}

// writeRecordsLocked sends writes at once (a takeover or a leave moves
// N/M shards: one after the other they would take N/M round trips) and
// settles them in order. Each write is conditional on its own record, so
// their order does not matter.
func (p *protocol) writeRecordsLocked(ctx context.Context, writes []recordWrite) {
	outs := make([]*coordinationv1.Lease, len(writes))
	errs := make([]error, len(writes))
	if p.sequentialWrites || len(writes) == 1 {
		for i, w := range writes {
			outs[i], errs[i] = w.do(ctx)
		}
	} else {
		var wg sync.WaitGroup
		for i, w := range writes {
			wg.Go(func() { outs[i], errs[i] = w.do(ctx) })
		}
		wg.Wait()
	}
	for i, w := range writes {
		if errs[i] == nil {
			p.observeLocked(outs[i], false)
		}
		w.then(outs[i], errs[i])
	}
}

// resolveUnknownLocked settles a record write whose outcome is unknown
// with a write of the record as this replica last saw it (move count
// raised): it succeeds only if the lost write never landed, and a late
// delivery of that write then conflicts.
func (p *protocol) resolveUnknownLocked(s int, rec *coordinationv1.Lease) *recordWrite {
	st := &p.shards[s]
	if rec == nil {
		st.phase = idle
		return nil
	}
	same := moveRecord(rec, holderOf(rec))
	return &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Update(ctx, same) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				st.phase = idle // the record is as this replica saw it: decide again
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
				// The lost write (or another) landed: wait for the watch.
			default:
				// Still unknown (or refused): try again after a retry period.
				p.failedLocked()
			}
		},
	}
}
