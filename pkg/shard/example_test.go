package shard_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/shard"
)

// Three replicas share 8 shards; a fourth joins and takes two, one from
// each of the replicas that had three; the others keep theirs.
func ExampleAssign() {
	members := []string{"replica-a", "replica-b", "replica-c"}
	before := shard.Assign(8, members, nil)
	after := shard.Assign(8, append(members, "replica-d"), before)
	held := map[string]int{}
	moved := 0
	for s := range after {
		held[after[s]]++
		if after[s] != before[s] {
			moved++
		}
	}
	fmt.Println("held:", held["replica-a"], held["replica-b"], held["replica-c"], held["replica-d"])
	fmt.Println("moved:", moved)
	// Output:
	// held: 2 2 2 2
	// moved: 2
}

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
