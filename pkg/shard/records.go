package shard

import (
	"fmt"
	"hash/fnv"
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations of a group's Leases. Marks (a member's state, a
// record's holder incarnation) are annotations, never labels: a label
// change that left the watch's selector would arrive as a deletion.
const (
	// LabelGroup names the group on every Lease of it; the watch selects by it.
	LabelGroup = "shard.rein.dev/group"
	// LabelRole is "member" on member Leases and "shard" on shard records.
	LabelRole = "shard.rein.dev/role"
	// AnnotationState marks a member Lease "leaving" or "dead"; absent
	// while the member is live. A marked incarnation never becomes live
	// again.
	AnnotationState = "shard.rein.dev/state"
	// annotationHolderUID is, on a shard record, the UID of the member
	// Lease (the incarnation) that holds it; holderIdentity names the
	// replica for people.
	annotationHolderUID = "shard.rein.dev/holder-uid"
	// annotationShard is a record's shard number.
	annotationShard = "shard.rein.dev/shard"

	roleMember = "member"
	roleShard  = "shard"

	stateLeaving = "leaving"
	stateDead    = "dead"
)

// MemberLeaseName is the name of identity's member Lease in group: the
// identity hashed, as identities may hold characters a name may not.
func MemberLeaseName(group, identity string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(identity))
	return fmt.Sprintf("%s-member-%016x", group, h.Sum64())
}

// RecordName is the name of shard s's record in group.
func RecordName(group string, s int) string { return fmt.Sprintf("%s-shard-%d", group, s) }

// incarnation names one life of a member: its identity and the UID of the
// member Lease it created.
type incarnation struct{ identity, uid string }

func (i incarnation) String() string {
	if i.identity == "" {
		return "nobody"
	}
	return i.identity + " (" + i.uid + ")"
}

// holderOf returns the incarnation a shard record names; the zero value
// for a free record.
func holderOf(rec *coordinationv1.Lease) incarnation {
	if rec == nil || rec.Spec.HolderIdentity == nil || *rec.Spec.HolderIdentity == "" {
		return incarnation{}
	}
	return incarnation{identity: *rec.Spec.HolderIdentity, uid: rec.Annotations[annotationHolderUID]}
}

// transitionsOf is a record's move count: every protocol write raises it,
// and it is the shard's fencing token.
func transitionsOf(l *coordinationv1.Lease) int64 {
	if l == nil || l.Spec.LeaseTransitions == nil {
		return 0
	}
	return int64(*l.Spec.LeaseTransitions)
}

// stateOf returns a member Lease's mark ("" while live).
func stateOf(l *coordinationv1.Lease) string { return l.Annotations[AnnotationState] }

// durationOf is the lease duration a member recorded, which is what its
// observers count (never their own setting).
func durationOf(l *coordinationv1.Lease) int32 {
	if l.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	return *l.Spec.LeaseDurationSeconds
}

// newRecord is shard s's record as first created, naming holder.
func newRecord(namespace, group string, s int, holder incarnation) *coordinationv1.Lease {
	zero := int32(0)
	rec := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: RecordName(group, s),
			Labels:      map[string]string{LabelGroup: group, LabelRole: roleShard},
			Annotations: map[string]string{annotationShard: strconv.Itoa(s)},
		},
		Spec: coordinationv1.LeaseSpec{LeaseTransitions: &zero},
	}
	return moveRecord(rec, holder)
}

// moveRecord returns a copy of rec naming holder, its move count raised by
// one: every protocol write changes the record, so that none is a no-op
// the apiserver skips (a skipped conditional write would prove nothing).
func moveRecord(rec *coordinationv1.Lease, holder incarnation) *coordinationv1.Lease {
	out := rec.DeepCopy()
	n := int32(transitionsOf(rec) + 1)
	out.Spec.LeaseTransitions = &n
	id := holder.identity
	out.Spec.HolderIdentity = &id
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	if holder.uid == "" {
		delete(out.Annotations, annotationHolderUID)
	} else {
		out.Annotations[annotationHolderUID] = holder.uid
	}
	now := metav1.NowMicro()
	out.Spec.AcquireTime = &now
	return out
}

// recordShard returns the shard a record's name is for, and false for a
// name that is not one of group's records.
func recordShard(group, name string, n int) (int, bool) {
	prefix := group + "-shard-"
	if len(name) <= len(prefix) || name[:len(prefix)] != prefix {
		return 0, false
	}
	s, err := strconv.Atoi(name[len(prefix):])
	if err != nil || s < 0 || s >= n || RecordName(group, s) != name {
		return 0, false
	}
	return s, true
}
