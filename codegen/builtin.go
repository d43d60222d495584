package codegen

// builtinPackages are the built-in kinds rein ships typed controllers for,
// so that users can write OnChange handlers for them without generating
// anything.
var builtinPackages = []*apiPackage{
	{ImportPath: "k8s.io/api/core/v1", Name: "v1", Version: "v1", Group: "core", Kinds: []*kind{
		{Name: "ConfigMap", Plural: "configmaps", Namespaced: true},
		{Name: "Event", Plural: "events", Namespaced: true},
		{Name: "Namespace", Plural: "namespaces", HasStatus: true, StatusType: "NamespaceStatus"},
		{Name: "Pod", Plural: "pods", Namespaced: true, HasStatus: true, StatusType: "PodStatus"},
		{Name: "Secret", Plural: "secrets", Namespaced: true},
		{Name: "Service", Plural: "services", Namespaced: true, HasStatus: true, StatusType: "ServiceStatus"},
	}},
	{ImportPath: "k8s.io/api/apps/v1", Name: "v1", Version: "v1", Group: "apps", Kinds: []*kind{
		{Name: "Deployment", Plural: "deployments", Namespaced: true, HasStatus: true, StatusType: "DeploymentStatus"},
	}},
	{ImportPath: "k8s.io/api/coordination/v1", Name: "v1", Version: "v1", Group: "coordination.k8s.io", Kinds: []*kind{
		{Name: "Lease", Plural: "leases", Namespaced: true},
	}},
}

// WriteBuiltinControllers writes the typed controllers of the built-in
// kinds (core/v1 ConfigMap, Event, Namespace, Pod, Secret, Service; apps/v1
// Deployment; coordination/v1 Lease) into dir, whose import path is
// importPath. rein runs it for its own pkg/controllers; `make generate`
// keeps that current.
func WriteBuiltinControllers(dir, importPath string) error {
	return writeControllers(builtinPackages, dir, importPath, "")
}
