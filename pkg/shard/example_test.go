package shard_test

import (
	"context"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/shard"
)

// A replica's membership, wired by hand (pkg/start does this for a group
// with Shards > 0): the factory's workers take only the keys of held
// shards, its writes pass the shards' fences, and a shard that starts here
// queues its keys. Run joins, takes a share, and on ctx's end hands every
// shard on and leaves.
func ExampleNewMember() {
	run := func(ctx context.Context, cfg *rest.Config, factory *framework.Factory) error {
		clients, err := kubernetes.NewForConfig(cfg) // not the factory's: its writes are fenced
		if err != nil {
			return err
		}
		identity, err := leader.NewIdentity("replica-a")
		if err != nil {
			return err
		}
		var member *shard.Member
		member, err = shard.NewMember(shard.Config{
			Namespace: "default", Group: "my-controller", Shards: 32, Identity: identity,
			OnStart: func(started []int) {
				engine.OpsOf(factory).EnqueueKeys(func(key string) bool { return slices.Contains(started, member.KeyShard(key)) })
			},
		}, clients.CoordinationV1())
		if err != nil {
			return err
		}
		engine.OpsOf(factory).GateKeys(member)
		engine.OpsOf(factory).GuardWrites(member.Fence())
		if err := engine.OpsOf(factory).StartCaches(ctx); err != nil {
			return err
		}
		if err := engine.OpsOf(factory).WaitForCacheSync(ctx); err != nil {
			return err
		}
		work := context.WithoutCancel(ctx) // handlers outlive ctx while their shards drain
		member.SetHandlerContext(work)
		workers, err := engine.OpsOf(factory).StartWorkers(work)
		if err != nil {
			return err
		}
		defer workers.Stop()
		return member.Run(ctx, 30*time.Second)
	}
	_ = run
}
