package testenv

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
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
	// loaded 2-core machine needs more than 20s at times).
	StartTimeout time.Duration
	// StopTimeout is how long each component has to exit after SIGTERM
	// before Stop kills it (default 20s; a component that nothing holds
	// exits in about a second).
	StopTimeout time.Duration

	// APIServerFlags are extra kube-apiserver flags, name without dashes to
	// values, applied after testenv's own: a name given no values removes
	// testenv's flag.
	APIServerFlags map[string][]string
}

// Env is a running control plane. Its methods are safe for concurrent use.
type Env struct {
	dir         string
	host        string // https://127.0.0.1:PORT
	ca          *authority
	requests    *openRequests
	stopTimeout time.Duration
	admin       *User
	started     time.Duration

	mu        sync.Mutex
	stopped   bool
	etcd      *proc // nil when not running
	apiserver *proc // nil when not running
	users     map[string]*User
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

// Config returns a copy of the user's client configuration. Stop names
// the requests made with it that are still open when it stops the
// control plane.
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
	e := &Env{dir: dir, requests: newOpenRequests(), users: map[string]*User{}}
	if err := e.start(binDir, opts); err != nil {
		// Stop ends whatever did start and removes dir.
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// portAttempts is how many times start picks new ports when a component
// finds one taken: a port is free when it is picked, but another process
// can take it before etcd or kube-apiserver binds it.
const portAttempts = 3

func (e *Env) start(binDir string, opts Options) error {
	startTimeout := opts.StartTimeout
	if startTimeout <= 0 {
		startTimeout = 60 * time.Second
	}
	e.stopTimeout = opts.StopTimeout
	if e.stopTimeout <= 0 {
		e.stopTimeout = 20 * time.Second
	}

	files, err := e.writeCerts()
	if err != nil {
		return fmt.Errorf("testenv: certificates: %w", err)
	}
	probe, err := e.probeClient()
	if err != nil {
		return fmt.Errorf("testenv: certificates: %w", err)
	}
	defer probe.CloseIdleConnections()

	apiFlags := map[string][]string{
		"allow-privileged":   {"true"},
		"authorization-mode": {"RBAC"},
		"bind-address":       {"127.0.0.1"},
		// The serving certificate is apiserver.crt and .key in cert-dir.
		"cert-dir":       {files.certDir},
		"client-ca-file": {files.ca},
		// No controller makes the default service accounts here, and
		// this plugin refuses pods until their account exists.
		"disable-admission-plugins":        {"ServiceAccount"},
		"service-account-key-file":         {files.saPub},
		"service-account-signing-key-file": {files.saKey},
		"service-cluster-ip-range":         {"10.0.0.0/24"},
	}
	if opts.Audit {
		auditLog := filepath.Join(e.dir, "audit.log")
		policy := filepath.Join(e.dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return fmt.Errorf("testenv: write audit policy: %w", err)
		}
		apiFlags["audit-policy-file"] = []string{policy}
		apiFlags["audit-log-path"] = []string{auditLog}
		// The log backend writes each event before the response is sent,
		// so a test that saw a response can read its event.
		apiFlags["audit-log-mode"] = []string{"blocking"}
		apiFlags["audit-log-format"] = []string{"json"}
		// The apiserver rotates its audit log at 100 MB by default, which
		// a long benchmark reaches; readers keep offsets into the file,
		// so it is one file for the control plane's whole life.
		apiFlags["audit-log-maxsize"] = []string{"0"}
	}

	begin := time.Now()
	for attempt := 1; ; attempt++ {
		err = e.startProcesses(binDir, apiFlags, opts.APIServerFlags, probe, startTimeout)
		if err == nil {
			break
		}
		err = fmt.Errorf("testenv: start control plane from %s: %w", binDir, err)
		if _, stopErrs := e.stopProcesses(); len(stopErrs) > 0 {
			return errors.Join(append([]error{err}, stopErrs...)...)
		}
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			return err
		}
	}
	e.started = time.Since(begin)

	admin, err := e.AddUser("admin", "system:masters")
	if err != nil {
		return err
	}
	e.admin = admin

	for _, d := range opts.CRDDirs {
		if err := e.InstallCRDs(d); err != nil {
			return err
		}
	}
	return nil
}

// errPortTaken is the error of a component that could not bind its port.
var errPortTaken = errors.New("port taken")

// startProcesses starts etcd, then kube-apiserver on it, on new ports, and
// waits until both are ready. What it started is in e.etcd and
// e.apiserver, for the caller to stop if it fails.
func (e *Env) startProcesses(binDir string, apiFlags, userFlags map[string][]string, probe *http.Client, timeout time.Duration) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	e.host = fmt.Sprintf("https://127.0.0.1:%d", ports[2])

	// A fresh data folder: etcd records its URLs in it.
	etcdData := filepath.Join(e.dir, "etcd")
	if err := os.RemoveAll(etcdData); err != nil {
		return err
	}
	etcd, err := e.startComponent("etcd", binDir, map[string][]string{
		"data-dir":              {etcdData},
		"listen-client-urls":    {etcdURL},
		"advertise-client-urls": {etcdURL},
		"listen-peer-urls":      {fmt.Sprintf("http://127.0.0.1:%d", ports[1])},
		// Nothing a test writes needs to survive a crash of the machine.
		"unsafe-no-fsync": {"true"},
	}, nil)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.etcd = etcd
	e.mu.Unlock()
	if err := waitReady(etcd, probe, etcdURL+"/health", timeout); err != nil {
		return err
	}

	apiFlags["etcd-servers"] = []string{etcdURL}
	apiFlags["secure-port"] = []string{strconv.Itoa(ports[2])}
	apiFlags["service-account-issuer"] = []string{e.host + "/"}
	api, err := e.startComponent("kube-apiserver", binDir, apiFlags, userFlags)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.apiserver = api
	e.mu.Unlock()
	return waitReady(api, probe, e.host+"/healthz", timeout)
}

// startComponent starts binDir/name with flags (overridden by extra: a name
// with no values drops the flag), its output appended to name.log in Dir.
func (e *Env) startComponent(name, binDir string, flags, extra map[string][]string) (*proc, error) {
	logFile, err := os.OpenFile(filepath.Join(e.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// The process holds its own copy of the descriptor.
	defer func() { _ = logFile.Close() }()
	all := maps.Clone(flags)
	maps.Copy(all, extra)
	var args []string
	for _, flag := range slices.Sorted(maps.Keys(all)) {
		for _, v := range all[flag] {
			args = append(args, "--"+flag+"="+v)
		}
	}
	return startProc(name, filepath.Join(binDir, name), args, logFile)
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
	if name == "" {
		return nil, errors.New("testenv: AddUser needs a user name")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil, errors.New("testenv: AddUser after Stop")
	}
	if have, ok := e.users[name]; ok {
		if strings.Join(have.Groups, ",") != strings.Join(groups, ",") {
			return nil, fmt.Errorf("testenv: user %q exists with groups %v, not %v", name, have.Groups, groups)
		}
		return have, nil
	}
	certPEM, keyPEM, err := e.ca.clientCert(name, groups)
	if err != nil {
		return nil, fmt.Errorf("testenv: provision user %q: %w", name, err)
	}
	config := &rest.Config{
		Host:            e.host,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.ca.certPEM, CertData: certPEM, KeyData: keyPEM},
		// Tests drive the apiserver hard; client-side throttling would
		// only slow them down and hide what the server does.
		QPS:   1000,
		Burst: 2000,
	}
	kubeconfig, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"testenv": {Server: e.host, CertificateAuthorityData: e.ca.certPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{name: {ClientCertificateData: certPEM, ClientKeyData: keyPEM}},
		Contexts:       map[string]*clientcmdapi.Context{"testenv": {Cluster: "testenv", AuthInfo: name}},
		CurrentContext: "testenv",
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: kubeconfig for user %q: %w", name, err)
	}
	path := filepath.Join(e.dir, fileSafe(name)+".kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return nil, fmt.Errorf("testenv: write kubeconfig for user %q: %w", name, err)
	}
	// Only the requests of this configuration are tracked: a process that
	// uses the kubeconfig file is its own to stop.
	config.Wrap(e.requests.transport(name))
	user := &User{Name: name, Groups: append([]string(nil), groups...), KubeconfigPath: path, config: config}
	e.users[name] = user
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

// Stop stops kube-apiserver and etcd and removes Dir, whatever is still
// open. It is safe to call more than once; when it returns, neither
// process runs and Dir is gone, unless its error says otherwise.
//
// The apiserver does not finish stopping while requests it serves stay
// open, and a watch stays open until its client ends it: a test that
// returns with a Watch or an informer whose context never ends would hold
// it. So Stop first ends the requests still open that were made with this
// Env's configurations; then each process gets SIGTERM and
// Options.StopTimeout to exit, then SIGKILL (an open request Stop cannot
// end, from another process say, comes to that). When Stop had to end
// requests or kill a process, it returns a *ForcedStopError that names
// them, so that the test that left them can be found; the control plane
// is gone all the same. Any other error means something may be left.
func (e *Env) Stop() error {
	e.mu.Lock()
	first := !e.stopped
	e.stopped = true
	e.mu.Unlock()
	forced := &ForcedStopError{}
	if first {
		forced.Open = e.requests.leftOpen(time.Now())
	}
	e.requests.endAll()
	killed, errs := e.stopProcesses()
	forced.Killed = killed
	if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, fmt.Errorf("testenv: remove %s: %w", e.dir, err))
	}
	wasForced := len(forced.Open) > 0 || len(forced.Killed) > 0
	switch {
	case len(errs) > 0 && wasForced:
		return errors.Join(append(errs, forced)...)
	case len(errs) > 0:
		return errors.Join(errs...)
	case wasForced:
		return forced
	}
	return nil
}

// stopProcesses stops kube-apiserver, then etcd (which it writes to), and
// returns which were killed and what could not be stopped.
func (e *Env) stopProcesses() (killed []string, errs []error) {
	e.mu.Lock()
	procs := []*proc{e.apiserver, e.etcd}
	e.apiserver, e.etcd = nil, nil
	e.mu.Unlock()
	for _, p := range procs {
		if p == nil {
			continue
		}
		wasKilled, err := p.stop(e.stopTimeout)
		if wasKilled {
			killed = append(killed, fmt.Sprintf("%s (pid %d) did not exit within %v of SIGTERM and was killed", p.name, p.cmd.Process.Pid, e.stopTimeout))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return killed, errs
}

// ForcedStopError is the error of a Stop that had to end requests still
// open, or kill a process, to stop the control plane. The control plane is
// stopped and its folder removed all the same.
type ForcedStopError struct {
	// Open are the requests that were still open, made with
	// configurations of the Env, oldest first:
	// "WATCH /api/v1/namespaces/default/configmaps?watch=true (user admin, open 2.5s)".
	// Requests whose context had ended are not in it: they were closing.
	Open []string
	// Killed are the processes that did not exit on SIGTERM in time.
	Killed []string
}

func (f *ForcedStopError) Error() string {
	var b strings.Builder
	b.WriteString("testenv: the control plane had to be forced down (it is stopped and its folder removed all the same):")
	for _, r := range f.Open {
		b.WriteString("\n  still open at stop: " + r)
	}
	for _, k := range f.Killed {
		b.WriteString("\n  " + k)
	}
	if len(f.Open) > 0 {
		b.WriteString("\nA request left open comes from a test that did not end its context: cancel the context of a Watch or an informer, or stop the watch, before the test returns.")
	}
	return b.String()
}
