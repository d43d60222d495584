package engine

// NewPartitionedInformer lets the external tests build a partitioned cache
// on their own list and watch.
var NewPartitionedInformer = newPartitionedInformer
