package codegen

// builtinPackages are the built-in kinds rein ships typed controllers for,
// so that users can write OnChange handlers for them without generating
// anything: the kinds controllers most often watch, own or create, of the
// groups core, apps, batch, networking.k8s.io, rbac.authorization.k8s.io,
// policy, autoscaling, discovery.k8s.io and coordination.k8s.io. A kind
// has a status handler helper when its Go type has a Status field (the
// apiserver serves its status subresource); pkg/controllers' tests check
// every kind's plural, scope and status subresource against an apiserver's
// discovery.
var builtinPackages = []*apiPackage{
	{ImportPath: "k8s.io/api/core/v1", Name: "v1", Version: "v1", Group: "core", Kinds: []*kind{
		{Name: "ConfigMap", Plural: "configmaps", Namespaced: true},
		{Name: "Event", Plural: "events", Namespaced: true},
		{Name: "Namespace", Plural: "namespaces", HasStatus: true, StatusType: "NamespaceStatus"},
		{Name: "Node", Plural: "nodes", HasStatus: true, StatusType: "NodeStatus"},
		{Name: "PersistentVolumeClaim", Plural: "persistentvolumeclaims", Namespaced: true, HasStatus: true, StatusType: "PersistentVolumeClaimStatus"},
		{Name: "Pod", Plural: "pods", Namespaced: true, HasStatus: true, StatusType: "PodStatus"},
		{Name: "Secret", Plural: "secrets", Namespaced: true},
		{Name: "Service", Plural: "services", Namespaced: true, HasStatus: true, StatusType: "ServiceStatus"},
		{Name: "ServiceAccount", Plural: "serviceaccounts", Namespaced: true},
	}},
	{ImportPath: "k8s.io/api/apps/v1", Name: "v1", Version: "v1", Group: "apps", Kinds: []*kind{
		{Name: "DaemonSet", Plural: "daemonsets", Namespaced: true, HasStatus: true, StatusType: "DaemonSetStatus"},
		{Name: "Deployment", Plural: "deployments", Namespaced: true, HasStatus: true, StatusType: "DeploymentStatus"},
		{Name: "ReplicaSet", Plural: "replicasets", Namespaced: true, HasStatus: true, StatusType: "ReplicaSetStatus"},
		{Name: "StatefulSet", Plural: "statefulsets", Namespaced: true, HasStatus: true, StatusType: "StatefulSetStatus"},
	}},
	{ImportPath: "k8s.io/api/batch/v1", Name: "v1", Version: "v1", Group: "batch", Kinds: []*kind{
		{Name: "CronJob", Plural: "cronjobs", Namespaced: true, HasStatus: true, StatusType: "CronJobStatus"},
		{Name: "Job", Plural: "jobs", Namespaced: true, HasStatus: true, StatusType: "JobStatus"},
	}},
	{ImportPath: "k8s.io/api/networking/v1", Name: "v1", Version: "v1", Group: "networking.k8s.io", Kinds: []*kind{
		{Name: "Ingress", Plural: "ingresses", Namespaced: true, HasStatus: true, StatusType: "IngressStatus"},
		{Name: "NetworkPolicy", Plural: "networkpolicies", Namespaced: true},
	}},
	{ImportPath: "k8s.io/api/rbac/v1", Name: "v1", Version: "v1", Group: "rbac.authorization.k8s.io", Kinds: []*kind{
		{Name: "ClusterRole", Plural: "clusterroles"},
		{Name: "ClusterRoleBinding", Plural: "clusterrolebindings"},
		{Name: "Role", Plural: "roles", Namespaced: true},
		{Name: "RoleBinding", Plural: "rolebindings", Namespaced: true},
	}},
	{ImportPath: "k8s.io/api/policy/v1", Name: "v1", Version: "v1", Group: "policy", Kinds: []*kind{
		{Name: "PodDisruptionBudget", Plural: "poddisruptionbudgets", Namespaced: true, HasStatus: true, StatusType: "PodDisruptionBudgetStatus"},
	}},
	{ImportPath: "k8s.io/api/autoscaling/v2", Name: "v2", Version: "v2", Group: "autoscaling", Kinds: []*kind{
		{Name: "HorizontalPodAutoscaler", Plural: "horizontalpodautoscalers", Namespaced: true, HasStatus: true, StatusType: "HorizontalPodAutoscalerStatus"},
	}},
	{ImportPath: "k8s.io/api/discovery/v1", Name: "v1", Version: "v1", Group: "discovery.k8s.io", Kinds: []*kind{
		{Name: "EndpointSlice", Plural: "endpointslices", Namespaced: true},
	}},
	{ImportPath: "k8s.io/api/coordination/v1", Name: "v1", Version: "v1", Group: "coordination.k8s.io", Kinds: []*kind{
		{Name: "Lease", Plural: "leases", Namespaced: true},
	}},
}

// WriteBuiltinControllers writes the typed controllers of the built-in
// kinds (see builtinPackages: core/v1 ConfigMap, Event, Namespace, Node,
// PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount; apps/v1
// DaemonSet, Deployment, ReplicaSet, StatefulSet; batch/v1 CronJob, Job;
// networking/v1 Ingress, NetworkPolicy; rbac/v1 ClusterRole,
// ClusterRoleBinding, Role, RoleBinding; policy/v1 PodDisruptionBudget;
// autoscaling/v2 HorizontalPodAutoscaler; discovery/v1 EndpointSlice;
// coordination/v1 Lease) into dir, whose import path is importPath. rein
// runs it for its own pkg/controllers; `make generate` keeps that current.
func WriteBuiltinControllers(dir, importPath string) error {
	return writeControllers(builtinPackages, dir, importPath, "")
}
