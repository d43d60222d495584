package start

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/rbacneeds"
)

// The start-up permission check (Options.CheckRBAC, --rbac-check).
//
// Before its first campaign a replica asks the apiserver, with one
// SelfSubjectAccessReview per needed rule, whether its own user may do
// what the program needs; missing rules are named all at once, with the
// YAML to add, in the log and in /readyz (unready meanwhile), and asked
// again every retry period until they are granted, so that fixing the
// roles without a restart is enough.
//
// While a rule is missing the replica does not campaign (nor join a shard
// group, nor start workers without election): a leader without a
// permission its workers need fails every such write, and a standby that
// cannot take over well is better than a leader that cannot work. Its
// caches run meanwhile (those it may read sync), so that it leads at once
// when the rules come. A cluster where the replica may not ask
// (SelfSubjectAccessReview refused or not served) starts without the
// check, and says so.

// rbacCheck asks whether the replica has its needs.
type rbacCheck struct {
	reviews  authorizationclient.SelfSubjectAccessReviewInterface
	every    time.Duration
	log      *logrus.Entry
	roleName string
	// closeIdle closes the check's connections once it is done.
	closeIdle func()

	done     chan struct{} // closed when every need is granted, or the check cannot be made
	doneOnce sync.Once

	mu      sync.Mutex
	checked bool
	missing []rbacneeds.Need
	lastErr error
}

// rbacReviewsAtOnce bounds the reviews in flight.
const rbacReviewsAtOnce = 8

// newRBACCheckFor returns a check whose reviews go out on a connection of
// their own: client-go would otherwise share one with the elector's
// client (same TLS settings), whose recovery from a cut connection must
// not depend on requests that ended long ago.
func newRBACCheckFor(cfg *rest.Config, every time.Duration, log *logrus.Entry) (*rbacCheck, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.Proxy == nil {
		cfg.Proxy = http.ProxyFromEnvironment // what a nil Proxy means, but not shared
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("permission check client: %w", err)
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("permission check client: %w", err)
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	return &rbacCheck{reviews: cs.AuthorizationV1().SelfSubjectAccessReviews(), every: every, log: log,
		done: make(chan struct{}), closeIdle: httpClient.CloseIdleConnections}, nil
}

func (c *rbacCheck) finish() {
	c.doneOnce.Do(func() {
		close(c.done)
		if c.closeIdle != nil {
			c.closeIdle()
		}
	})
}

// run checks needs until all are granted or ctx ends.
func (c *rbacCheck) run(ctx context.Context, needs []rbacneeds.Need) {
	pending := needs
	reported, lastErr := "", ""
	began := time.Now()
	for {
		missing, err := c.review(ctx, pending)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && cannotAsk(err):
			c.log.WithError(err).Warn("RBAC: this replica may not ask the apiserver what it may do (SelfSubjectAccessReview); starting without the permission check: a missing permission will show as 403 errors instead")
			c.set(nil, nil)
			c.finish()
			return
		case err != nil:
			c.set(pending, err)
			if err.Error() != lastErr {
				c.log.WithError(err).Warn("RBAC: cannot check this replica's permissions yet; not campaigning until it can")
				lastErr = err.Error()
			}
		case len(missing) == 0:
			c.set(nil, nil)
			c.log.WithFields(logrus.Fields{"rules": len(needs), "took": time.Since(began).Round(time.Millisecond)}).
				Info("RBAC: every permission this replica needs is granted")
			c.finish()
			return
		default:
			pending, lastErr = missing, ""
			c.set(missing, nil)
			if d := describeNeeds(missing); d != reported {
				reported = d
				c.log.WithField("missing", len(missing)).Error(c.report(missing))
			}
		}
		t := time.NewTimer(c.every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// report says what is missing and the YAML that grants it.
func (c *rbacCheck) report(missing []rbacneeds.Need) string {
	return fmt.Sprintf("RBAC: this replica lacks %d permission(s) it needs; it does not campaign until they are granted (asked again every %v):\n%s\n%s",
		len(missing), c.every, describeNeeds(missing), missingYAML(missing, c.roleName))
}

func (c *rbacCheck) set(missing []rbacneeds.Need, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked, c.missing, c.lastErr = err == nil, missing, err
}

// err is the check's part of /readyz: nil once every need is granted.
func (c *rbacCheck) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.lastErr != nil:
		return fmt.Errorf("RBAC: cannot check this replica's permissions yet: %w", c.lastErr)
	case !c.checked:
		return errors.New("RBAC: checking this replica's permissions")
	case len(c.missing) > 0:
		return errors.New(c.report(c.missing))
	}
	return nil
}

// review asks about each need and returns those not allowed, in order.
func (c *rbacCheck) review(ctx context.Context, needs []rbacneeds.Need) ([]rbacneeds.Need, error) {
	allowed := make([]bool, len(needs))
	errs := make([]error, len(needs))
	sem := make(chan struct{}, rbacReviewsAtOnce)
	var wg sync.WaitGroup
	for i, n := range needs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			allowed[i], errs[i] = c.ask(ctx, n.Rule)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, firstError(errs)
	}
	var missing []rbacneeds.Need
	for i, n := range needs {
		if !allowed[i] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ask reviews one rule as this replica's user. A rule of the replica's
// own namespace is always resolved by the time a replica runs.
func (c *rbacCheck) ask(ctx context.Context, r rbacneeds.Rule) (bool, error) {
	plural, sub := rbacneeds.SplitResource(r.Resource)
	review, err := c.reviews.Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: r.Namespace, Verb: r.Verb, Group: r.Group, Resource: plural, Subresource: sub, Name: r.Name,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SelfSubjectAccessReview of %s: %w", r, err)
	}
	return review.Status.Allowed, nil
}

// cannotAsk tells the errors that asking again will not cure: the
// replica may not create SelfSubjectAccessReviews, or they are not served.
func cannotAsk(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)
}

// awaitRBAC blocks g until the check is done (every need granted, or no
// check), or ctx ends (false).
func (r *Replica) awaitRBAC(ctx context.Context, g *groupRun) bool {
	if r.rbac == nil {
		return true
	}
	// The check usually answers within a few round trips: say nothing
	// unless it takes longer.
	quiet := time.NewTimer(2 * time.Second)
	defer quiet.Stop()
	select {
	case <-r.rbac.done:
		return true
	case <-ctx.Done():
		return false
	case <-quiet.C:
	}
	what := "not campaigning"
	switch {
	case g.member != nil:
		what = "not joining the shard group"
	case g.elector == nil:
		what = "not starting the workers"
	}
	g.log.Warn("RBAC: " + what + " until this replica has every permission it needs (see the RBAC error, and /readyz)")
	select {
	case <-r.rbac.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// startRBACCheck computes the replica's needs and checks them in the
// background until ctx ends.
func (r *Replica) startRBACCheck(ctx context.Context) {
	if r.rbac == nil {
		return
	}
	var groups []Group
	for _, g := range r.groups {
		groups = append(groups, g.Group)
	}
	ns := r.opts.LeaseNamespace
	if ns == "" {
		ns = DefaultLeaseNamespace
	}
	r.rbac.roleName = "controller"
	if s, err := rbacSubject(r.opts, ns, groups); err == nil {
		r.rbac.roleName = s.Name
	}
	needs := rbacNeeds(r.opts, ns, groups)
	r.log.WithField("rules", len(needs)).Debug("RBAC: checking this replica's permissions:\n" + describeNeeds(needs))
	go r.rbac.run(ctx, needs)
}
