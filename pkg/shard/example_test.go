package shard_test

import (
	"context"
	"fmt"

	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/shard"
	"github.com/rein-k8s/rein/pkg/start"
)

// A replica of a sharded group: pkg/start makes its Member, gates the
// factory's workers to the keys of held shards, fences its writes with the
// shards' holds, queues a shard's keys when it starts here, and on
// shutdown hands every shard on before it leaves. Every replica runs the
// same group with the same shard count (--shards).
func ExampleNewMember() {
	run := func(ctx context.Context, opts start.Options, factory *framework.Factory) error {
		return start.Run(ctx, opts, start.Group{LeaseName: "my-controller", Shards: 32, Factories: []start.Starter{factory}})
	}
	_ = run
}

// Of is the shard of an object's key, computed alike on every replica: an
// operator reading the shard records (RecordName) can tell which replica
// works on an object.
func ExampleOf() {
	fmt.Println(shard.Of("default", "vm-1", 32), shard.Of("default", "vm-2", 32))
	fmt.Println(shard.RecordName("my-controller", shard.Of("default", "vm-2", 32)))
	// Output:
	// 0 25
	// my-controller-shard-25
}
