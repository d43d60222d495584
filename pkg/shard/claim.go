package shard

import (
	"context"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// claimLocked takes s, whose record names nobody live, for this replica.
func (p *protocol) claimLocked(s int, rec *coordinationv1.Lease, from incarnation) *recordWrite {
	st := &p.shards[s]
	if wait := st.inNetworkUntil.Sub(p.clock.Now()); wait > 0 && from.identity == p.cfg.Identity {
		return nil // a request of this replica's earlier hold may still be in the network
	}
	return p.moveRecordLocked(s, rec, p.me(), "take the shard", func(out *coordinationv1.Lease) {
		p.log.WithFields(logrus.Fields{"shard": s, "from": from.String()}).Info("shard taken")
		p.startShardLocked(s, out)
	})
}

// moveRecordLocked writes rec, moved to to, conditional on rec: once it
// lands, done runs with the record written. A conflict or NotFound waits
// for the watch; a refusal is retried after a retry period (what says
// what could not be done); an unknown outcome leaves s unknown.
func (p *protocol) moveRecordLocked(s int, rec *coordinationv1.Lease, to incarnation, what string, done func(out *coordinationv1.Lease)) *recordWrite {
	st := &p.shards[s]
	moved := moveRecord(rec, to)
	return &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Update(ctx, moved) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				done(out)
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
				// The record changed under this replica's view: the watch shows how.
			case isAPIStatus(err):
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("cannot " + what + "; retrying")
			default:
				p.failedLocked()
				st.phase, st.unknownAt = unknown, transitionsOf(rec)
			}
		},
	}
}

func (p *protocol) createRecordLocked(s int) *recordWrite {
	rec := newRecord(p.cfg.Namespace, p.cfg.Group, s, p.me())
	return &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Create(ctx, rec) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				p.startShardLocked(s, out)
			case apierrors.IsAlreadyExists(err):
				// Another replica made it: the watch shows it.
			case isAPIStatus(err):
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("cannot create the shard record; retrying")
			default:
				// Unknown outcome: the record may exist and name this
				// replica. A create cannot be retried conditionally; the
				// watch (or the next list) shows whether it landed, and a
				// record that names this replica is started from there.
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("shard record create: outcome unknown")
			}
		},
	}
}
