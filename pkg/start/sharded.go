package start

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/shard"
)

// shardGroup makes g a sharded group: a member of the shard group named by
// its LeaseName, the gate of its workers and the guard of its writes.
func (r *Replica) shardGroup(g *groupRun, clients kubernetes.Interface) error {
	switch {
	case g.Shards < 0:
		return fmt.Errorf("shard count %d: want 0 (a single leader) or more", g.Shards)
	case !r.opts.LeaderElect:
		return errors.New("a sharded group needs --leader-elect: without it every replica would run every key")
	case r.opts.ServerSideFencing:
		return errors.New("--server-side-fencing does not cover sharded groups yet (the policy checks one Lease per binding): turn it off for this replica, or run the group with one leader")
	case len(g.OnLeader) > 0:
		return errors.New("a sharded group has no leader to run OnLeader hooks: put them in a group of their own (Shards 0) beside it")
	}
	g.log = r.log.WithField("shardGroup", r.opts.LeaseNamespace+"/"+g.LeaseName)
	starters := g.Factories
	for i, st := range starters {
		if n := engine.OpsOf(st.Base()).Partitioned(); n != 0 && n != g.Shards {
			return fmt.Errorf("factory %d partitions its caches into %d shards (framework.Options.PartitionShards) and the group has %d (--shards): use the same count", i, n, g.Shards)
		}
	}
	var member *shard.Member
	// held tells a partitioned cache whether a shard is still held here
	// as it is about to list it: a shard that stopped meanwhile (and was
	// dropped by OnStop) is not listed again.
	held := func(s int) bool { return slices.Contains(member.Held(), s) }
	var warmNext func(next []int)
	if g.partitionCaches == partitionWarmNext {
		warmNext = func(next []int) {
			for _, st := range starters {
				engine.OpsOf(st.Base()).WarmShards(next, held)
			}
			g.log.WithField("next", next).Debug("shards next in line cached warm")
		}
	}
	member, err := shard.NewMember(shard.Config{
		Namespace: r.opts.LeaseNamespace, Group: g.LeaseName, Shards: g.Shards, Identity: r.identity,
		LeaseDuration: r.opts.LeaseDuration, RenewDeadline: r.opts.RenewDeadline, RetryPeriod: r.opts.RetryPeriod,
		DrainGrace: r.opts.DrainGrace, Logger: r.log,
		// A shard new here takes keys once the caches hold the
		// apiserver's state of its objects as of its start: a
		// partitioned cache lists the shard's objects, the others catch
		// up.
		Prepare: func(ctx context.Context, started []int) error {
			for _, st := range starters {
				if err := engine.OpsOf(st.Base()).AddShards(ctx, started, held); err != nil {
					return err
				}
			}
			return r.awaitCurrent(ctx, g, inShards(member, started))
		},
		OnStart: func(started []int) {
			n := 0
			for _, st := range starters {
				n += engine.OpsOf(st.Base()).EnqueueShards(started, member.KeyShard)
			}
			g.log.WithFields(map[string]any{"started": started, "keys": n, "held": member.Held()}).Info("shards started here; their keys are queued")
		},
		// A shard gone from here leaves the partitioned caches: its new
		// holder lists it.
		OnStop: func(stopped []int) {
			for _, st := range starters {
				engine.OpsOf(st.Base()).DropShards(stopped)
			}
		},
		// --partition-caches=warm-next: the shards this replica would
		// take over first are cached ahead (a takeover checks them
		// against the apiserver instead of listing them).
		OnNext: warmNext,
	}, clients.CoordinationV1())
	if err != nil {
		return err
	}
	keyShards := func(visit func(int)) {
		for _, st := range starters {
			engine.OpsOf(st.Base()).VisitKeyShards(member.KeyShard, visit)
		}
	}
	if err := member.RegisterMetrics(r.opts.Registry, keyShards); err != nil {
		return fmt.Errorf("shard metrics: %w", err)
	}
	for _, st := range starters {
		engine.OpsOf(st.Base()).GateKeys(member)
		engine.OpsOf(st.Base()).GuardWrites(member.Fence())
		engine.OpsOf(st.Base()).SetFieldManager("")
	}
	g.member = member
	return nil
}

// inShards returns whether a key belongs to one of shards.
func inShards(member *shard.Member, shards []int) func(key string) bool {
	set := make(map[int]bool, len(shards))
	for _, s := range shards {
		set[s] = true
	}
	return func(key string) bool { return set[member.KeyShard(key)] }
}

// workSharded runs a sharded group once its caches have synced: workers
// run from the start and take the keys of the shards this replica holds;
// the member joins, takes its share and moves shards as the group changes.
// When ctx ends the member leaves (each shard drained and handed on), then
// the workers stop.
func (r *Replica) workSharded(ctx context.Context, g *groupRun) error {
	// Handlers outlive ctx while their shards drain.
	workCtx, endWork := context.WithCancel(context.WithoutCancel(ctx))
	defer endWork()
	g.member.SetHandlerContext(workCtx)
	workers, err := startWorkers(workCtx, g)
	if err != nil {
		return err
	}
	g.log.Info("workers started; they run the keys of the shards this replica holds")
	err = g.member.Run(ctx, r.opts.DrainGrace+r.opts.RenewDeadline)
	workers.stop()
	if werr := workers.wait(time.Now().Add(r.opts.DrainGrace)); werr != nil {
		g.log.WithError(werr).Warn("handlers still running after the shards were handed on")
	}
	if err != nil {
		return fmt.Errorf("shard group %s: %w", g.LeaseName, err)
	}
	g.log.Info("left the shard group")
	return nil
}
