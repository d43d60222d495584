// Package electionflags names the command-line flags that set a leader
// election's parameters. pkg/start binds them; pkg/leader names them in its
// validation errors, so that a wrong value can be traced to the flag that
// set it. They are the names Kubernetes components use
// (k8s.io/component-base), so operators meet familiar flags.
package electionflags

const (
	LeaseDuration     = "--leader-elect-lease-duration"
	RenewDeadline     = "--leader-elect-renew-deadline"
	RetryPeriod       = "--leader-elect-retry-period"
	ResourceName      = "--leader-elect-resource-name"
	ResourceNamespace = "--leader-elect-resource-namespace"
)
