package leader

import (
	"context"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
)

// fencingPolicyName names the ValidatingAdmissionPolicy of server-side
// fencing: one per cluster, shared by every rein lease.
const fencingPolicyName = "rein-fencing"

// fieldManagerPrefix starts the field manager of every write that
// server-side fencing checks.
const fieldManagerPrefix = "rein/"

// maxFieldManager is the apiserver's limit on a field manager's length.
const maxFieldManager = 128

// FencingFieldManager is the field manager a replica with identity sets on
// its writes under lease namespace/name when server-side fencing is on:
// rein/<namespace>/<lease>/<identity>. The fencing policy admits such a
// write only while identity holds that Lease. It fails when the name would
// pass the apiserver's 128-character limit.
func FencingFieldManager(namespace, name, identity string) (string, error) {
	m := fieldManagerPrefix + namespace + "/" + name + "/" + identity
	if len(m) > maxFieldManager {
		return "", fmt.Errorf("leader: server-side fencing: field manager %q has %d characters, more than the apiserver's %d: shorten the lease name or the identity base (POD_NAME)", m, len(m), maxFieldManager)
	}
	return m, nil
}

// FencingPolicy returns the ValidatingAdmissionPolicy of server-side
// fencing (cluster-wide, one for all leases; see the package doc): a
// create, update or patch whose field manager is
// rein/<namespace>/<lease>/<identity> is admitted only while the Lease
// namespace/lease (the policy's parameter) names identity as its holder.
// Writes with any other field manager are not looked at.
func FencingPolicy() *admissionregistrationv1.ValidatingAdmissionPolicy {
	const prefix = `"` + fieldManagerPrefix + `" + params.metadata.namespace + "/" + params.metadata.name + "/"`
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: fencingPolicyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			ParamKind:     &admissionregistrationv1.ParamKind{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*/*"}, // every resource and subresource
						},
					},
				}},
			},
			// Cheap and param-free: only writes that rein marked are
			// evaluated at all.
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "rein-fenced-write",
				Expression: `has(request.options) && has(request.options.fieldManager) && request.options.fieldManager.startsWith("` + fieldManagerPrefix + `")`,
			}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `!request.options.fieldManager.startsWith(` + prefix + `) || ` +
					`(has(params.spec.holderIdentity) && request.options.fieldManager == ` + prefix + ` + params.spec.holderIdentity)`,
				MessageExpression: `"fenced: the writer " + request.options.fieldManager + " does not hold lease " + ` +
					`params.metadata.namespace + "/" + params.metadata.name + " (holder: " + (has(params.spec.holderIdentity) ? params.spec.holderIdentity : "none") + ")"`,
				Reason: ptr.To(metav1.StatusReasonForbidden),
			}},
		},
	}
}

// FencingPolicyBinding returns the binding that applies FencingPolicy with
// the Lease namespace/name as its parameter. A binding per lease: each
// checks only the writes whose field manager names its lease. While the
// Lease does not exist the binding admits everything: the apiserver
// applies a binding's parameterNotFoundAction before any match condition,
// so Deny would refuse every write in the cluster (the Lease's own create
// included) until the Lease exists.
func FencingPolicyBinding(namespace, name string) (*admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	bindingName := fencingPolicyName + "." + namespace + "." + name
	if msgs := validation.IsDNS1123Subdomain(bindingName); len(msgs) > 0 {
		return nil, fmt.Errorf("leader: fencing policy binding name %q: %s", bindingName, strings.Join(msgs, "; "))
	}
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: bindingName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: fencingPolicyName,
			ParamRef: &admissionregistrationv1.ParamRef{
				Name: name, Namespace: namespace,
				ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction),
			},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}, nil
}

// AwaitFencingPolicy waits until the apiserver's fencing policy admits the
// writes of this term's holder, marked with fieldManager (its
// FencingFieldManager), and returns how many probes it sent.
//
// Why: the policy reads the Lease from the apiserver's informer, which
// trails the Lease's commit by some milliseconds. Until it has seen the
// acquisition, it still admits the previous holder's writes (one that a
// partitioned network delivers then is admitted) and refuses this
// holder's. A term that starts its workers only once its own writes are
// admitted has every late write of its predecessor refused from its first
// write on: the two never interleave (pkg/leader's doc, "Server-side
// fencing").
//
// Each probe is a dry-run update of the Lease (nothing is stored) with
// fieldManager: admitted, the policy sees this holder (or no policy is
// installed, which the caller may check apart); refused with the policy's
// "fenced:" message, it waits a little and tries again. A conflict (the
// term renewed between the read and the probe) is retried at once. It
// returns the term's or ctx's error when either ends first, an error if
// the policy still refuses after the lease duration (the apiserver's view
// of the Lease is stuck: waiting longer would leave the group without a
// worker), and any other error as it is.
func (t *Term) AwaitFencingPolicy(ctx context.Context, fieldManager string) (probes int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	pause := time.Millisecond
	giveUp := t.e.clock.Now().Add(t.e.leaseDuration)
	for {
		if t.e.clock.Now().After(giveUp) {
			return probes, fmt.Errorf("leader: the fencing policy still refuses the writes of %s, the holder of lease %s, after %v (%d probes): the apiserver's view of the Lease is behind", fieldManager, t.e.key, t.e.leaseDuration, probes)
		}
		if err := ctx.Err(); err != nil {
			if t.ctx.Err() != nil {
				return probes, context.Cause(t.ctx)
			}
			return probes, err
		}
		lease, err := t.e.leases.Get(ctx, t.e.name, metav1.GetOptions{})
		if err != nil {
			return probes, t.e.explain("get", err)
		}
		probes++
		_, err = t.e.leases.Update(ctx, lease, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: fieldManager})
		switch {
		case err == nil:
			return probes, nil
		case apierrors.IsConflict(err):
			continue
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "fenced:"):
			t.e.sleep(ctx, pause)
			pause = min(2*pause, t.e.retryPeriod)
		default:
			return probes, t.e.explain("update (dry run)", err)
		}
	}
}
