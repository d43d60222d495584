package shard_test

import (
	"fmt"

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
