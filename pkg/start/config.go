package start

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// loadedConfig is what LoadConfig found: where the configuration came
// from, and the namespace it names, to default the lease namespace with.
type loadedConfig struct {
	ok bool
	// inCluster: the pod's service account, not a kubeconfig file.
	inCluster bool
	// context is the kubeconfig context used and file the file defining it.
	context, file string
	// namespace is the context's namespace ("" when it has none), or in a
	// cluster the pod's namespace; namespaceFrom says where that was read.
	namespace, namespaceFrom string
}

// LoadConfig loads the rest.Config the way kubectl and client-go do
// (clientcmd's deferred loading rules), sets o.Config to it and returns
// it. The first of these wins:
//
//  1. the file of --kubeconfig (o.Kubeconfig): it must exist;
//  2. the files listed in $KUBECONFIG, merged (missing ones are skipped);
//  3. ~/.kube/config;
//  4. the in-cluster configuration (the pod's service account), when
//     KUBERNETES_SERVICE_HOST is set and the token file exists.
//
// A kubeconfig uses its current context. In a pod, which normally has
// neither $KUBECONFIG nor ~/.kube/config, that is the in-cluster
// configuration.
//
// LoadConfig also remembers the context's namespace: a replica whose lease
// namespace is not set otherwise puts its Lease there (see the package
// documentation). Errors name the file or context and what to do.
//
// Before it loads anything it checks the other settings (malformed flag
// values, timings that do not fit, bad addresses), and reports them with a
// configuration problem in one error: a user who got several flags wrong
// learns of all of them in one run. A configuration that loaded is kept in
// o.Config even when the settings are wrong.
func (o *Options) LoadConfig() (*rest.Config, error) {
	// The groups' lease names are New's to check; a placeholder stands for
	// them, so that the timings are checked all the same.
	settingsErr := errors.Join(o.settingsErrors([]string{"placeholder"})...)
	var cfg *rest.Config
	var err error
	if o.PrintRBAC {
		// --print-rbac reaches no cluster, and must print the same on
		// every machine: no kubeconfig is read, and the factories are
		// built on an address that is never dialled.
		cfg = &rest.Config{Host: printRBACHost}
		o.Config = cfg
	} else {
		cfg, err = o.loadConfig()
	}
	if settingsErr != nil {
		if err != nil {
			return nil, fmt.Errorf("start: %w\n%w", settingsErr, err)
		}
		return nil, fmt.Errorf("start: %w", settingsErr)
	}
	return cfg, err
}

// printRBACHost is the apiserver of the configuration LoadConfig returns
// with PrintRBAC: a reserved name (RFC 2606) that resolves nowhere.
const printRBACHost = "https://print-rbac.invalid"

func (o *Options) loadConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	// Never rewrite the user's files: an old ~/.kube/.kubeconfig is not
	// migrated to ~/.kube/config here (kubectl does that).
	rules.MigrationRules = nil
	rules.ExplicitPath = o.Kubeconfig
	if rules.ExplicitPath == "" && o.kubeconfigFlag != nil {
		rules.ExplicitPath = o.kubeconfigFlag.String()
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := loader.ClientConfig()
	raw, rawErr := loader.RawConfig()
	current := ""
	if rawErr == nil {
		current = raw.CurrentContext
	}
	if err != nil {
		switch {
		case rules.ExplicitPath != "" && rawErr != nil:
			return nil, fmt.Errorf("start: kubeconfig %s (--kubeconfig): %w: pass a readable kubeconfig file", rules.ExplicitPath, err)
		case clientcmd.IsEmptyConfig(err):
			return nil, fmt.Errorf("start: no configuration to reach an apiserver: %s, and this is not a pod (KUBERNETES_SERVICE_HOST unset or no service account token): pass --kubeconfig FILE, set KUBECONFIG, or choose a context with `kubectl config use-context`", searched(rules))
		case current != "":
			file := ""
			if c := raw.Contexts[current]; c != nil {
				file = c.LocationOfOrigin
			}
			if file == "" {
				file = strings.Join(rules.GetLoadingPrecedence(), string(filepath.ListSeparator))
			}
			return nil, fmt.Errorf("start: kubeconfig %s, context %q: %w: fix the context, or choose another with `kubectl config use-context`", file, current, err)
		default:
			return nil, fmt.Errorf("start: %s: %w", searched(rules), err)
		}
	}

	loaded := loadedConfig{ok: true}
	if c := raw.Contexts[current]; rawErr == nil && c != nil {
		loaded.context, loaded.file = current, c.LocationOfOrigin
		loaded.namespace = c.Namespace
	} else {
		// The deferred loader found no usable kubeconfig and fell back to
		// the pod's service account.
		loaded.inCluster = true
		loaded.namespace, loaded.namespaceFrom = podNamespace()
	}
	o.Config, o.loaded = cfg, loaded
	return cfg, nil
}

// searched says where LoadConfig looked for a kubeconfig, when none had a
// usable current context.
func searched(rules *clientcmd.ClientConfigLoadingRules) string {
	if rules.ExplicitPath != "" {
		return "kubeconfig " + rules.ExplicitPath + " (--kubeconfig) has no current context"
	}
	if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		return fmt.Sprintf("$KUBECONFIG (%s) names no existing kubeconfig with a current context", env)
	}
	if _, err := os.Stat(clientcmd.RecommendedHomeFile); err == nil {
		return fmt.Sprintf("no --kubeconfig, $KUBECONFIG is empty and %s has no current context", clientcmd.RecommendedHomeFile)
	}
	return fmt.Sprintf("no --kubeconfig, $KUBECONFIG is empty and %s does not exist", clientcmd.RecommendedHomeFile)
}

// resolveLeaseNamespace returns the lease namespace and why it is that one,
// for the log: the one set (by the pod's environment, a flag or the
// field), else the kubeconfig context's, else DefaultLeaseNamespace.
func (o *Options) resolveLeaseNamespace() (ns, why string) {
	const change = "set --leader-elect-resource-namespace to change"
	l := o.loaded
	switch {
	case o.LeaseNamespace != "" && o.LeaseNamespace == o.podNamespace:
		return o.LeaseNamespace, "the pod's namespace, from " + o.podNamespaceFrom
	case o.LeaseNamespace != "":
		return o.LeaseNamespace, "set by --leader-elect-resource-namespace or Options.LeaseNamespace"
	case !l.ok:
		return DefaultLeaseNamespace, "Options.Config was not loaded by LoadConfig, so no kubeconfig context names one; " + change
	case l.inCluster && l.namespace != "":
		return l.namespace, "the pod's namespace, from " + l.namespaceFrom
	case l.inCluster:
		return DefaultLeaseNamespace, "in-cluster configuration, but neither " + serviceAccountNamespaceFile + " nor POD_NAMESPACE names a namespace; " + change
	case l.namespace != "":
		return l.namespace, fmt.Sprintf("the namespace of kubeconfig context %q in %s; %s", l.context, l.file, change)
	default:
		return DefaultLeaseNamespace, fmt.Sprintf("kubeconfig context %q has none; %s", l.context, change)
	}
}
