package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options configures a control plane. The zero value is ready to use.
type Options struct {
	// BinDir holds kube-apiserver and etcd. Empty means: look for them
	// in $REIN_TESTBIN, $KUBEBUILDER_ASSETS, the bin/ folder of the rein
	// checkout containing the working directory, and rein-testbin's folder,
	// as the package documentation says.
	BinDir string

	// CRDDirs are folders of CRD manifests (YAML or JSON) installed before
	// Start returns; Start waits until every one is served.
	CRDDirs []string

	// Audit turns on the apiserver's audit log: one JSON line per request at
	// the Metadata level, in the file audit.log of Dir. The file is never
	// rotated, so offsets into it stay valid.
	Audit bool

	// StartTimeout bounds the start of each component (default 60s: a
	// loaded 2-core machine needs more than envtest's 20s default at times).
	StartTimeout time.Duration
	// StopTimeout bounds the stop of each component (default 20s).
	StopTimeout time.Duration

	// APIServerFlags are extra kube-apiserver flags, name without dashes to
	// values, applied after testenv's own.
	APIServerFlags map[string][]string
}

// Env is a running control plane. Its methods are safe for concurrent use.
type Env struct {
	env     *envtest.Environment
	dir     string
	admin   *User
	started time.Duration

	mu    sync.Mutex
	users map[string]*User
}

// User is an identity on the control plane: a client certificate with a
// user name and groups, as a rest.Config and as a kubeconfig file.
type User struct {
	Name   string
	Groups []string
	// KubeconfigPath is a kubeconfig file for this user, for other processes.
	KubeconfigPath string

	config *rest.Config
}

// Config returns a copy of the user's client configuration.
func (u *User) Config() *rest.Config { return rest.CopyConfig(u.config) }

// Clientset returns a typed clientset that acts as this user.
func (u *User) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(u.Config())
}

// Start starts etcd and kube-apiserver, provisions the admin user (group
// system:masters), installs the CRDs of opts.CRDDirs and returns once the
// apiserver serves them. Call Stop when done.
func Start(opts Options) (*Env, error) {
	binDir, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rein-testenv-")
	if err != nil {
		return nil, fmt.Errorf("testenv: create working directory: %w", err)
	}
	e := &Env{dir: dir, users: map[string]*User{}}
	if err := e.start(binDir, opts); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return e, nil
}

func (e *Env) start(binDir string, opts Options) error {
	startTimeout := opts.StartTimeout
	if startTimeout <= 0 {
		startTimeout = 60 * time.Second
	}
	stopTimeout := opts.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = 20 * time.Second
	}

	apiLog, err := os.Create(filepath.Join(e.dir, "kube-apiserver.log"))
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	etcdLog, err := os.Create(filepath.Join(e.dir, "etcd.log"))
	if err != nil {
		_ = apiLog.Close()
		return fmt.Errorf("testenv: %w", err)
	}
	// The processes hold their own copies of the descriptors.
	defer func() { _ = apiLog.Close(); _ = etcdLog.Close() }()

	te := &envtest.Environment{
		// Never reach for a cluster from the developer's kubeconfig, whatever
		// USE_EXISTING_CLUSTER says.
		UseExistingCluster:       ptr.To(false),
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  stopTimeout,
	}
	api := te.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(binDir, "kube-apiserver")
	api.Out, api.Err = apiLog, apiLog
	etcd := &envtest.Etcd{}
	te.ControlPlane.Etcd = etcd
	etcd.Path = filepath.Join(binDir, "etcd")
	etcd.Out, etcd.Err = etcdLog, etcdLog

	args := api.Configure()
	if opts.Audit {
		auditLog := filepath.Join(e.dir, "audit.log")
		policy := filepath.Join(e.dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return fmt.Errorf("testenv: write audit policy: %w", err)
		}
		args.Set("audit-policy-file", policy)
		args.Set("audit-log-path", auditLog)
		// The log backend writes each event before the response is sent,
		// so a test that saw a response can read its event.
		args.Set("audit-log-mode", "blocking")
		args.Set("audit-log-format", "json")
		// The apiserver rotates its audit log at 100 MB by default, which
		// a long benchmark reaches; readers keep offsets into the file,
		// so it is one file for the control plane's whole life.
		args.Set("audit-log-maxsize", "0")
	}
	for name, values := range opts.APIServerFlags {
		args.Set(name, values...)
	}

	begin := time.Now()
	if _, err := te.Start(); err != nil {
		_ = te.Stop()
		return fmt.Errorf("testenv: start control plane from %s: %w (component logs: %s)", binDir, err, e.dir)
	}
	e.started = time.Since(begin)
	e.env = te

	admin, err := e.addUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}})
	if err != nil {
		_ = e.Stop()
		return err
	}
	e.admin = admin

	for _, d := range opts.CRDDirs {
		if err := e.InstallCRDs(d); err != nil {
			_ = e.Stop()
			return err
		}
	}
	return nil
}

// auditPolicy records every request once, when its response is complete,
// with user, verb, resource and timestamps but no bodies.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
`

// Admin is the cluster administrator (group system:masters).
func (e *Env) Admin() *User { return e.admin }

// Config returns a copy of the admin's client configuration.
func (e *Env) Config() *rest.Config { return e.admin.Config() }

// KubeconfigPath is the admin's kubeconfig file.
func (e *Env) KubeconfigPath() string { return e.admin.KubeconfigPath }

// Dir is the folder that holds this control plane's kubeconfig files, logs
// and audit log. It is removed by Stop.
func (e *Env) Dir() string { return e.dir }

// StartDuration is how long etcd and kube-apiserver took to become healthy.
func (e *Env) StartDuration() time.Duration { return e.started }

// AddUser provisions a user with the given groups and no other rights:
// grant it some with RBAC objects. Adding a name again returns the first
// user if the groups match and an error otherwise.
func (e *Env) AddUser(name string, groups ...string) (*User, error) {
	return e.addUser(envtest.User{Name: name, Groups: groups})
}

func (e *Env) addUser(u envtest.User) (*User, error) {
	if u.Name == "" {
		return nil, errors.New("testenv: AddUser needs a user name")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.env == nil {
		return nil, errors.New("testenv: AddUser after Stop")
	}
	if have, ok := e.users[u.Name]; ok {
		if strings.Join(have.Groups, ",") != strings.Join(u.Groups, ",") {
			return nil, fmt.Errorf("testenv: user %q exists with groups %v, not %v", u.Name, have.Groups, u.Groups)
		}
		return have, nil
	}
	// Tests drive the apiserver hard; client-side throttling would only
	// slow them down and hide what the server does.
	authn, err := e.env.AddUser(u, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return nil, fmt.Errorf("testenv: provision user %q: %w", u.Name, err)
	}
	kubeconfig, err := authn.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("testenv: kubeconfig for user %q: %w", u.Name, err)
	}
	path := filepath.Join(e.dir, fileSafe(u.Name)+".kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return nil, fmt.Errorf("testenv: write kubeconfig for user %q: %w", u.Name, err)
	}
	user := &User{Name: u.Name, Groups: append([]string(nil), u.Groups...), KubeconfigPath: path, config: authn.Config()}
	e.users[u.Name] = user
	return user, nil
}

// fileSafe maps a user name such as system:serviceaccount:ns:sa to a name
// that can be a file name.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, name)
}

// InstallCRDs creates (or updates) every CRD in the YAML or JSON files of
// dir and waits until the apiserver serves all of them.
func (e *Env) InstallCRDs(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("testenv: CRD directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("testenv: CRD directory %s is not a directory", dir)
	}
	crds, err := envtest.InstallCRDs(e.Config(), envtest.CRDInstallOptions{
		Paths:              []string{dir},
		ErrorIfPathMissing: true,
		MaxTime:            30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("testenv: install CRDs from %s: %w", dir, err)
	}
	if len(crds) == 0 {
		return fmt.Errorf("testenv: no CRD manifests found in %s", dir)
	}
	return nil
}

// Stop stops kube-apiserver and etcd and removes Dir. It is safe to call
// more than once.
func (e *Env) Stop() error {
	e.mu.Lock()
	te := e.env
	e.env = nil
	e.mu.Unlock()
	var err error
	if te != nil {
		if stopErr := te.Stop(); stopErr != nil {
			err = fmt.Errorf("testenv: stop control plane: %w", stopErr)
		}
	}
	if rmErr := os.RemoveAll(e.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("testenv: remove %s: %w", e.dir, rmErr)
	}
	return err
}
