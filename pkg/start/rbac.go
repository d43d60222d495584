package start

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/rbacneeds"
)

// The RBAC a replica needs, gathered from the code that runs: what each
// group's factories registered (caches, controllers, status and OnRemove
// handlers, apply sets: see internal/engine's rbac.go), what the process
// registered (event recorders, the webhook certificate's Secret, the CA
// injection), this package's own Leases, and Options.RBACRules.

// bindRBACFlags binds --print-rbac, --rbac-service-account and
// --rbac-check on scratch (BindFlags moves them to the program's set).
func (o *Options) bindRBACFlags(scratch *flag.FlagSet) {
	scratch.BoolVar(&o.PrintRBAC, "print-rbac", o.PrintRBAC,
		"Print the ClusterRole, Roles and bindings this program needs, from the handlers, caches, apply sets and Leases it registers, and exit 0. Reaches no cluster; needs no kubeconfig.")
	scratch.StringVar(&o.RBACServiceAccount, "rbac-service-account", o.RBACServiceAccount,
		"With --print-rbac: the ServiceAccount the bindings bind, NAMESPACE/NAME or NAME; it also names the roles (default: the lease name, in the lease namespace).")
	scratch.BoolVar(&o.CheckRBAC, "rbac-check", o.CheckRBAC,
		"At start, ask the apiserver (SelfSubjectAccessReview) whether this replica has every permission it needs; while one is missing, say which in the log and /readyz and do not campaign.")
}

// rbacNeeds is everything the replica needs, merged and sorted.
// leaseNamespace is where the Leases are (rbacneeds.Unresolved when not
// known).
func rbacNeeds(opts Options, leaseNamespace string, groups []Group) []rbacneeds.Need {
	own := &rbacneeds.Set{}
	sets := []*rbacneeds.Set{own, rbacneeds.Process}
	for _, g := range groups {
		lease := rbacneeds.Rule{Namespace: leaseNamespace, Group: "coordination.k8s.io", Resource: "leases"}
		switch {
		case g.Shards > 0:
			// A member Lease per replica (its name hashes the identity) and
			// a record per shard, all watched by label: no names to narrow to.
			own.Add("shard group "+g.LeaseName+": the member Leases and the shard records", lease,
				"get", "list", "watch", "create", "update", "delete")
		case opts.LeaderElect:
			why := "leader election on Lease " + g.LeaseName
			own.Add(why, lease, "create") // a create names no object
			lease.Name = g.LeaseName
			// The list and watch select it by name (a field selector).
			own.Add(why, lease, "get", "list", "watch", "update")
			if opts.ServerSideFencing {
				own.Add("server-side fencing: a dry-run update of Lease "+g.LeaseName+" to see the policy admit the term", lease, "update")
			}
		}
		for _, s := range g.Factories {
			sets = append(sets, engine.OpsOf(s.Base()).RBAC())
		}
	}
	if opts.MetricsSecure {
		why := "--metrics-secure: each scrape's token and its access to /metrics are reviewed"
		own.Add(why, rbacneeds.Rule{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "create")
		own.Add(why, rbacneeds.Rule{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, "create")
	}
	rbacneeds.FromPolicyRules(own, "declared by the program (start.Options.RBACRules)", "", opts.RBACRules)
	return rbacneeds.Merge(sets...)
}

// rbacSubject is the ServiceAccount of the printed bindings and the name
// of the roles: --rbac-service-account, else the first group's lease name
// in the lease namespace.
func rbacSubject(opts Options, leaseNamespace string, groups []Group) (rbacneeds.Subject, error) {
	s := rbacneeds.Subject{}
	if v := opts.RBACServiceAccount; v != "" {
		ns, name, ok := strings.Cut(v, "/")
		if !ok {
			ns, name = "", v
		}
		for _, part := range []struct{ what, v string }{{"namespace", ns}, {"name", name}} {
			if part.v == "" && part.what == "namespace" {
				continue
			}
			if msgs := validation.IsDNS1123Subdomain(part.v); len(msgs) > 0 {
				return s, fmt.Errorf("--rbac-service-account=%q: the %s %q: %s", v, part.what, part.v, strings.Join(msgs, "; "))
			}
		}
		s.Namespace, s.Name = ns, name
	}
	if s.Namespace == "" && leaseNamespace != rbacneeds.Unresolved {
		s.Namespace = leaseNamespace
	}
	if s.Name == "" {
		for _, g := range groups {
			if g.LeaseName != "" {
				s.Name = g.LeaseName
				break
			}
		}
	}
	if s.Name == "" {
		return s, errors.New("--print-rbac: nothing names the roles and the ServiceAccount: pass --rbac-service-account NAMESPACE/NAME")
	}
	return s, nil
}

// rbacHeader heads the printed YAML.
const rbacHeader = `RBAC of this program, printed by --print-rbac from the code that runs:
what its caches, controllers, status and OnRemove handlers, apply sets,
event recorders, webhook certificates and Leases use (rein registers each
as it is set up). Regenerate rather than edit. Rules a handler needs
beyond these (a typed client's Create or Delete, a client rein does not
make) are declared with start.Options.RBACRules.`

// printRBAC renders the roles and bindings the program of opts and groups
// needs, without reaching a cluster: Run's --print-rbac.
func printRBAC(opts Options, groups []Group) (string, error) {
	var errs []error
	var leaseNames []string
	for _, g := range groups {
		if g.LeaseName != "" {
			leaseNames = append(leaseNames, g.LeaseName)
		}
		errs = append(errs, g.problems(opts.LeaderElect)...)
	}
	errs = append(opts.settingsErrors(leaseNames), errs...)
	if len(groups) == 0 {
		errs = append(errs, errors.New("nothing to run: pass at least one Group with a factory"))
	}
	leaseNamespace := opts.LeaseNamespace
	if leaseNamespace == "" {
		// In a pod the replica uses its own namespace: the one kubectl
		// apply -n or kustomize gives the Role.
		leaseNamespace = rbacneeds.Unresolved
	}
	subject, err := rbacSubject(opts, leaseNamespace, groups)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	roles := rbacneeds.Roles(rbacNeeds(opts, leaseNamespace, groups))
	return rbacneeds.YAML(rbacHeader, roles, subject.Name, subject, true), nil
}

// missingYAML renders the missing needs as the rules to add, in roles
// named after what --print-rbac would print.
func missingYAML(missing []rbacneeds.Need, roleName string) string {
	return rbacneeds.YAML("add these rules to the roles bound to this replica's user (rein --print-rbac prints them all):",
		rbacneeds.Roles(missing), roleName, rbacneeds.Subject{}, false)
}

// describeNeeds lists needs one a line, for the log and /readyz.
func describeNeeds(needs []rbacneeds.Need) string {
	lines := make([]string, 0, len(needs))
	for _, n := range needs {
		lines = append(lines, "  "+n.Rule.String()+" ("+strings.Join(n.Why, "; ")+")")
	}
	return strings.Join(lines, "\n")
}
