// Package framework is what a replica runs: a Factory of shared caches,
// clients and controllers for one group of kinds, and its Options (the
// namespaces cached, workers, retry pacing, metrics registry, logger).
// Generated factories embed a *Factory; pkg/start runs one or more of them
// (start.Starter).
//
// Handler code does not import this package: typed controllers, handlers,
// their results (ErrSkip, RequeueAfter), the handler's logger, filters and
// resources are pkg/generic's. The engine behind both is internal
// (internal/engine): the split it rests on, read with pkg/start's run
// order, is that every replica starts caches and queues every key, and
// workers run only under a hold (a leader's term or a held shard).
//
// Limits: a Factory belongs to one replica, which starts its caches once and
// its workers once per hold; its Options are read when it is made. Objects
// in a cache are shared: a handler gets its own copy.
package framework
