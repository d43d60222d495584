// Package electionflags names the command-line flags that set a leader
// election's parameters and checks the timings they set. pkg/start binds
// them; pkg/leader and pkg/shard check their timings with CheckTimings and
// name them in its errors, so that a wrong value can be traced to the flag
// that set it. They are the names Kubernetes components use
// (k8s.io/component-base), so operators meet familiar flags.
package electionflags

import (
	"fmt"
	"time"
)

const (
	LeaseDuration     = "--leader-elect-lease-duration"
	RenewDeadline     = "--leader-elect-renew-deadline"
	RetryPeriod       = "--leader-elect-retry-period"
	ResourceName      = "--leader-elect-resource-name"
	ResourceNamespace = "--leader-elect-resource-namespace"
)

// RetryJitter is how much longer than the retry period the gap between two
// renews may grow (client-go's wait.JitterUntil factor): the renew deadline
// must leave room for it.
const RetryJitter = 1.2

// CheckTimings reports every problem of a lease's timings, naming the flag
// that sets each: none may be negative (zero means the default), a standby
// must not take the lease over before the holder has given up renewing it,
// and the holder needs time to retry a failed renew.
func CheckTimings(leaseDuration, renewDeadline, retryPeriod time.Duration) []error {
	var errs []error
	for _, t := range []struct {
		flag string
		d    time.Duration
	}{{LeaseDuration, leaseDuration}, {RenewDeadline, renewDeadline}, {RetryPeriod, retryPeriod}} {
		if t.d < 0 {
			errs = append(errs, fmt.Errorf("%s is %v: it must be greater than zero", t.flag, t.d))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if leaseDuration <= renewDeadline {
		errs = append(errs, fmt.Errorf("%s (%v) must be greater than %s (%v): a standby must not take the lease over before the leader has given up renewing it",
			LeaseDuration, leaseDuration, RenewDeadline, renewDeadline))
	}
	if minDeadline := time.Duration(RetryJitter * float64(retryPeriod)); renewDeadline <= minDeadline {
		errs = append(errs, fmt.Errorf("%s (%v) must be greater than %v × %s (%v × %v = %v): the leader needs time to retry a failed renew",
			RenewDeadline, renewDeadline, RetryJitter, RetryPeriod, RetryJitter, retryPeriod, minDeadline))
	}
	return errs
}
