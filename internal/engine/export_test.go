package engine

// NewPartitionedInformer lets the external tests build a partitioned cache
// on their own list and watch.
var NewPartitionedInformer = newPartitionedInformer

// ShardStore is the store of shard s of a controller's partitioned cache,
// for tests that make it lag the apiserver.
func ShardStore(c *Controller, s int) (interface {
	Add(obj any) error
	Delete(obj any) error
}, bool) {
	p, ok := c.informer.(*partitionedInformer)
	if !ok {
		return nil, false
	}
	return p.shardStore(s)
}

// PauseWarming keeps p's warmer from starting a list until resume, as an
// AddShards does.
func PauseWarming(p *partitionedInformer) (resume func()) {
	return p.pauseWarming()
}
