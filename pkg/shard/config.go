package shard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"

	"github.com/rein-k8s/rein/internal/electionflags"
	"github.com/rein-k8s/rein/pkg/leader"
)

// Config configures one replica's membership in a sharded group.
type Config struct {
	// Namespace holds the group's Leases: a member Lease per replica and
	// a record per shard.
	Namespace string
	// Group names the group; its Leases are named after it and labelled
	// with it.
	Group string
	// Shards is the number of shards (> 0). Every replica of a group must
	// use the same number; changing it moves most keys (a redeploy).
	Shards int
	// Identity names this replica; unique per process (leader.NewIdentity).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are pkg/leader's, for
	// the member Lease. Zero means pkg/leader's defaults.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// DrainGrace bounds how long a shard that moves away waits for its
	// handlers in flight before it is shut (their contexts end).
	DrainGrace time.Duration
	// FallbackDelay is how long a shard whose record names nobody live may
	// wait for its assignee before any live member takes it. Zero means
	// RetryPeriod.
	FallbackDelay time.Duration
	// OnStart is called with the shards that started on this replica in
	// one step of the protocol, to queue their keys (pkg/start queues every
	// cached key of them, in one pass over the caches). It runs on the
	// protocol's goroutine, outside its lock; with Prepare set, on
	// Prepare's goroutine once it has returned.
	OnStart func(shards []int)
	// Prepare, when set, makes shards that start here take no key until
	// it returns nil for them: it is called, in a goroutine the member
	// owns, with the shards that started in one step, and its context
	// ends when the member stops. An error is logged and Prepare called
	// again after RetryPeriod. Shards handed on meanwhile are not
	// admitted. pkg/start waits there for its caches to catch up with the
	// apiserver, so that no handler of a new hold runs on a stale cache.
	Prepare func(ctx context.Context, shards []int) error
	// OnStop, when set, is called with the shards that stopped on this
	// replica (handed off, released, or lost with its incarnation) in
	// one step, once they are shut: their handlers have returned or
	// been cut off. It runs on the protocol's goroutine, outside its
	// lock; a Prepare of the same shards may still be running. pkg/start
	// drops their objects from partitioned caches.
	OnStop func(shards []int)
	// OnNext, when set, is called with the shards this replica is next in
	// line for, whenever they change: those the assignment would give it
	// if any one other member left, that it is not assigned now (none
	// while it joins or leaves). pkg/start caches them ahead of a
	// takeover (--partition-caches=warm-next). It runs on the protocol's
	// goroutine, outside its lock, after OnStop.
	OnNext func(shards []int)
	// Clock is the clock (nil: the real one).
	Clock clock.Clock
	// Logger receives the group's logs (nil: logrus's standard logger).
	Logger *logrus.Entry
}

// MaxShards bounds Shards: each shard is a Lease, moved with its own
// write.
const MaxShards = 4096

func (c *Config) withDefaults() {
	if c.LeaseDuration == 0 {
		c.LeaseDuration = leader.DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = leader.DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = leader.DefaultRetryPeriod
	}
	if c.DrainGrace == 0 {
		c.DrainGrace = c.RenewDeadline
	}
	if c.FallbackDelay == 0 {
		c.FallbackDelay = c.RetryPeriod
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = logrus.NewEntry(logrus.StandardLogger())
	}
}

// Validate reports every problem of c, naming what to fix. Zero timings
// stand for their defaults.
func (c Config) Validate() error {
	c.withDefaults()
	var errs []error
	if c.Shards <= 0 || c.Shards > MaxShards {
		errs = append(errs, fmt.Errorf("shard count %d: want 1 to %d", c.Shards, MaxShards))
	}
	if c.Namespace == "" {
		errs = append(errs, errors.New("no namespace for the group's Leases"))
	}
	if msgs := validation.IsDNS1123Subdomain(RecordName(c.Group, max(c.Shards-1, 0))); c.Group == "" || len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("group name %q: it names Leases (%q), so it must be a lowercase DNS name: %s", c.Group, RecordName(c.Group, 0), strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsValidLabelValue(c.Group); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("group name %q must be a valid label value: %s", c.Group, strings.Join(msgs, "; ")))
	}
	if strings.TrimSpace(c.Identity) == "" {
		errs = append(errs, errors.New("no identity: use leader.NewIdentity"))
	}
	errs = append(errs, electionflags.CheckTimings(c.LeaseDuration, c.RenewDeadline, c.RetryPeriod)...)
	if c.LeaseDuration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("lease duration %v: a member Lease records whole seconds, so use a multiple of 1s", c.LeaseDuration))
	}
	if c.DrainGrace < 0 || c.FallbackDelay < 0 {
		errs = append(errs, fmt.Errorf("drain grace %v and fallback delay %v must not be negative", c.DrainGrace, c.FallbackDelay))
	}
	return errors.Join(errs...)
}
