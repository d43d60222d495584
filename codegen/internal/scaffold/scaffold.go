package scaffold

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// StateFile is where a project's scaffold state is kept, at its root.
const StateFile = ".rein-scaffold.json"

// ReinModule is the module every scaffolded project requires.
const ReinModule = "github.com/rein-k8s/rein"

// GoVersion is the go line of a new project's go.mod: rein's own, which
// a module requiring rein cannot go below.
const GoVersion = "1.26.0"

// The tools a project runs with `go tool`.
var tools = []string{ReinModule + "/cmd/rein-testbin", ReinModule + "/codegen/cmd/rein-gen"}

// state is the content of StateFile.
type state struct {
	Module    string `json:"module"`
	Domain    string `json:"domain"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Kinds     []Kind `json:"kinds,omitempty"`
	// Files maps every file this package wrote to the SHA-256 of its
	// content as written ("sha256:<hex>").
	Files map[string]string `json:"files"`
}

// Kind is one kind in one version, as create api was asked for it.
type Kind struct {
	Group         string   `json:"group"` // the first label: "webapp"
	Version       string   `json:"version"`
	Kind          string   `json:"kind"`
	ClusterScoped bool     `json:"clusterScoped,omitempty"`
	Webhooks      []string `json:"webhooks,omitempty"` // "defaulting", "validating"
	Conversion    bool     `json:"conversion,omitempty"`
}

// InitOptions are init's flags.
type InitOptions struct {
	// Dir is the project's folder: empty, or the root of a Go module.
	Dir string
	// Module is the module path; in an existing module, its own (the
	// default there).
	Module string
	// Domain ends every API group (webapp.<domain>); default: the
	// module path's first element when it has a dot.
	Domain string
	// Name names the binary, the Lease, the Deployment and the namespace
	// (<name>-system); default: the module path's last element.
	Name string
	// ReinVersion is the rein version go.mod requires; default: the one
	// this program was built from.
	ReinVersion string
	// ReinReplace, when set, is a local rein checkout go.mod replaces
	// rein with (for working on rein itself, or before a release).
	ReinReplace string
	// NoTidy skips `go mod tidy` (tests that prepare go.sum themselves).
	NoTidy bool
	Log    io.Writer
}

// APIOptions are create api's flags.
type APIOptions struct {
	Dir           string
	Group         string
	Version       string
	Kind          string
	ClusterScoped bool
	// Webhooks are "validating" and "defaulting", any order.
	Webhooks   []string
	Conversion bool
	// Generate runs `make generate` after writing (default in the
	// command); off, the project does not build until it is run.
	Generate bool
	Log      io.Writer
}

var (
	groupRE   = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	versionRE = regexp.MustCompile(`^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$`)
	kindRE    = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	nameRE    = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	domainRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)
)

// Init writes a new project into o.Dir, or what is missing of one into
// an existing module there.
func Init(ctx context.Context, o InitOptions) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := readState(dir)
	if err != nil {
		return err
	}
	modPath, modData, err := readGoMod(dir)
	if err != nil {
		return err
	}
	if old != nil && o.Module != "" && o.Module != old.Module {
		return fmt.Errorf("init: %s says the module is %s, not %s", StateFile, old.Module, o.Module)
	}
	if modPath != "" && o.Module != "" && o.Module != modPath {
		return fmt.Errorf("init: go.mod declares module %s, not --module %s", modPath, o.Module)
	}
	st := &state{Files: map[string]string{}}
	if old != nil {
		*st = *old
		st.Files = maps(old.Files)
	}
	if st.Module == "" {
		st.Module = firstOf(o.Module, modPath)
	}
	if st.Module == "" {
		return errors.New("init: --module is required in a folder without go.mod, e.g. --module example.com/guestbook")
	}
	if err := module.CheckPath(st.Module); err != nil {
		return fmt.Errorf("init: --module %s: %v", st.Module, err)
	}
	if st.Domain == "" {
		st.Domain = o.Domain
		if st.Domain == "" {
			if first, _, _ := strings.Cut(st.Module, "/"); strings.Contains(first, ".") {
				st.Domain = first
			}
		}
	} else if o.Domain != "" && o.Domain != st.Domain {
		return fmt.Errorf("init: the project's domain is %s (%s), not %s", st.Domain, StateFile, o.Domain)
	}
	if !domainRE.MatchString(st.Domain) {
		return fmt.Errorf("init: --domain %q: want a DNS name with a dot, lower case (API groups are <group>.<domain>), e.g. --domain example.com", st.Domain)
	}
	if st.Name == "" {
		st.Name = o.Name
		if st.Name == "" {
			st.Name = strings.ToLower(st.Module[strings.LastIndex(st.Module, "/")+1:])
		}
	}
	if !nameRE.MatchString(st.Name) || len(st.Name) > 40 {
		return fmt.Errorf("init: project name %q: want a DNS label of at most 40 characters (lower case, digits, dashes), e.g. --name guestbook", st.Name)
	}
	if st.Namespace == "" {
		st.Namespace = st.Name + "-system"
	}

	if modData == nil {
		version, err := reinVersion(o)
		if err != nil {
			return err
		}
		if err := writeGoMod(dir, st.Module, version, o.ReinReplace); err != nil {
			return err
		}
		fmt.Fprintf(o.Log, "rein-gen: wrote go.mod (module %s, rein %s)\n", st.Module, version)
	} else if err := addToGoMod(ctx, dir, modData, o); err != nil {
		return err
	}

	changed, skipped, err := apply(dir, old, st, o.Log)
	if err != nil {
		return err
	}
	if !changed && old != nil {
		fmt.Fprintln(o.Log, "rein-gen: init: nothing to do"+stillSkipped(skipped))
		return nil
	}
	if err := writeState(dir, st); err != nil {
		return err
	}
	if !o.NoTidy {
		fmt.Fprintln(o.Log, "rein-gen: running go mod tidy")
		if err := run(ctx, dir, o.Log, "go", "mod", "tidy"); err != nil {
			return fmt.Errorf("init: go mod tidy: %w", err)
		}
	}
	fmt.Fprintf(o.Log, "rein-gen: next: go tool rein-gen create api --group GROUP --version v1 --kind KIND (in %s)\n", dir)
	return nil
}

// CreateAPI adds a kind to the project in o.Dir.
func CreateAPI(ctx context.Context, o APIOptions) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	old, err := readState(dir)
	if err != nil {
		return err
	}
	if old == nil {
		return fmt.Errorf("create api: %s has no %s: run rein-gen init there first", dir, StateFile)
	}
	k, err := o.kind(old.Domain)
	if err != nil {
		return err
	}
	st := *old
	st.Files = maps(old.Files)
	st.Kinds = slices.Clone(old.Kinds)
	if err := st.add(k); err != nil {
		return err
	}
	changed, skipped, err := apply(dir, old, &st, o.Log)
	if err != nil {
		return err
	}
	if !changed && slices.EqualFunc(old.Kinds, st.Kinds, equalKind) {
		fmt.Fprintf(o.Log, "rein-gen: create api: nothing to do: %s %s/%s is in the project%s\n", k.Kind, k.Group, k.Version, stillSkipped(skipped))
		return nil
	}
	if err := writeState(dir, &st); err != nil {
		return err
	}
	if !o.Generate {
		fmt.Fprintln(o.Log, "rein-gen: next: make generate (the new code does not build before it)")
		return nil
	}
	fmt.Fprintln(o.Log, "rein-gen: running make generate")
	if err := run(ctx, dir, o.Log, "make", "generate"); err != nil {
		return fmt.Errorf("create api: make generate: %w (fix it and run make generate again)", err)
	}
	// The tests of the kind import what the program does not (pkg/testenv
	// brings requirements of its own).
	fmt.Fprintln(o.Log, "rein-gen: running go mod tidy")
	if err := run(ctx, dir, o.Log, "go", "mod", "tidy"); err != nil {
		return fmt.Errorf("create api: go mod tidy: %w", err)
	}
	fmt.Fprintln(o.Log, "rein-gen: next: make test")
	return nil
}

// kind checks o and returns the kind it asks for.
func (o APIOptions) kind(domain string) (Kind, error) {
	var errs []error
	if !groupRE.MatchString(o.Group) || token.IsKeyword(o.Group) {
		errs = append(errs, fmt.Errorf("--group %q: want a lower-case word, e.g. webapp (the API group is <group>.%s; it names Go packages too)", o.Group, domain))
	}
	if !versionRE.MatchString(o.Version) {
		errs = append(errs, fmt.Errorf("--version %q: want a Kubernetes API version, e.g. v1, v1alpha1, v2beta1", o.Version))
	}
	if !kindRE.MatchString(o.Kind) {
		errs = append(errs, fmt.Errorf("--kind %q: want a CamelCase name starting with a capital, e.g. Guestbook", o.Kind))
	}
	k := Kind{Group: o.Group, Version: o.Version, Kind: o.Kind, ClusterScoped: o.ClusterScoped, Conversion: o.Conversion}
	for _, w := range o.Webhooks {
		switch w = strings.TrimSpace(w); w {
		case "validating", "defaulting":
			if !slices.Contains(k.Webhooks, w) {
				k.Webhooks = append(k.Webhooks, w)
			}
		case "":
		default:
			errs = append(errs, fmt.Errorf("--webhook %q: want validating, defaulting or both (validating,defaulting)", w))
		}
	}
	sort.Strings(k.Webhooks)
	return k, errors.Join(errs...)
}

// add records k in the state: a new kind, a new version of a kind, or
// more of an existing one (webhooks, conversion).
func (s *state) add(k Kind) error {
	var first *Kind
	for i := range s.Kinds {
		o := &s.Kinds[i]
		if o.Group != k.Group || o.Kind != k.Kind {
			continue
		}
		if first == nil {
			first = o
		}
		if o.ClusterScoped != k.ClusterScoped {
			return fmt.Errorf("create api: %s of %s is %s: a kind's scope cannot change (drop --cluster-scoped or add it, as for %s)", k.Kind, k.Group, scope(o.ClusterScoped), o.Version)
		}
		if o.Version == k.Version {
			for _, w := range k.Webhooks {
				if !slices.Contains(o.Webhooks, w) {
					o.Webhooks = append(o.Webhooks, w)
				}
			}
			sort.Strings(o.Webhooks)
			o.Conversion = o.Conversion || k.Conversion
			return nil
		}
	}
	if first != nil {
		if !k.Conversion {
			return fmt.Errorf("create api: %s already has version %s: another version needs --conversion (%s stays the storage version and the hub it converts through)", k.Kind, first.Version, first.Version)
		}
		if len(k.Webhooks) > 0 {
			return fmt.Errorf("create api: webhooks are scaffolded on %s's first version, %s: requests in %s reach them converted (run create api --version %s --webhook ... to add them there)", k.Kind, first.Version, k.Version, first.Version)
		}
		first.Conversion = true
	}
	s.Kinds = append(s.Kinds, k)
	return nil
}

func scope(cluster bool) string {
	if cluster {
		return "cluster-scoped"
	}
	return "namespaced"
}

func equalKind(a, b Kind) bool {
	return a.Group == b.Group && a.Version == b.Version && a.Kind == b.Kind && a.ClusterScoped == b.ClusterScoped &&
		slices.Equal(a.Webhooks, b.Webhooks) && a.Conversion == b.Conversion
}

// stillSkipped ends a "nothing to do" line.
func stillSkipped(n int) string {
	if n == 0 {
		return " and every file is as rein-gen wrote it"
	}
	return fmt.Sprintf("; the %d file(s) above are still skipped", n)
}

// apply makes the files of the project match st's rendering, under the
// rules of the package documentation, reports what it did to log, and
// updates st.Files. old is the state before (nil for none). It says
// whether it wrote or recorded anything, and how many files it skipped.
func apply(dir string, old, st *state, log io.Writer) (changed bool, skips int, err error) {
	files, err := render(st)
	if err != nil {
		return false, 0, err
	}
	var before map[string]string
	if old != nil {
		if before, err = renderMap(old); err != nil {
			return false, 0, err
		}
	}
	var skipped []string
	for _, f := range files {
		want := sum(f.content)
		recorded, known := st.Files[f.path]
		if known && recorded == want {
			continue // rendered as last written: whatever the user did since stands
		}
		path := filepath.Join(dir, filepath.FromSlash(f.path))
		current, err := os.ReadFile(path)
		exists := err == nil
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, 0, err
		}
		switch {
		case exists && sum(string(current)) == want:
			st.Files[f.path] = want // already so
			changed = true
		case !exists && !known:
			if err := writeFile(path, f.content); err != nil {
				return false, 0, err
			}
			st.Files[f.path] = want
			changed = true
			fmt.Fprintf(log, "rein-gen: wrote %s\n", f.path)
		case exists && known && sum(string(current)) == recorded:
			if err := writeFile(path, f.content); err != nil {
				return false, 0, err
			}
			st.Files[f.path] = want
			changed = true
			fmt.Fprintf(log, "rein-gen: updated %s\n", f.path)
		default:
			why := "you changed it since rein-gen wrote it"
			switch {
			case !exists:
				why = "you deleted it (remove its line from " + StateFile + " to have it written again)"
			case !known:
				why = "it was not written by rein-gen"
			}
			msg := fmt.Sprintf("rein-gen: skipped %s: %s", f.path, why)
			if added := addedLines(before[f.path], f.content); exists && len(added) > 0 {
				msg += "; rein-gen's version adds these lines:\n\t" + strings.Join(added, "\n\t")
			}
			skipped = append(skipped, msg)
		}
	}
	for _, m := range skipped {
		fmt.Fprintln(log, m)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(log, "rein-gen: %d file(s) skipped, not overwritten: merge what they lack by hand\n", len(skipped))
	}
	return changed, len(skipped), nil
}

// addedLines are the lines of next that prev lacks, in next's order
// (blank lines left out).
func addedLines(prev, next string) []string {
	have := map[string]int{}
	for _, l := range strings.Split(prev, "\n") {
		have[l]++
	}
	var out []string
	for _, l := range strings.Split(next, "\n") {
		if have[l] > 0 {
			have[l]--
			continue
		}
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func renderMap(st *state) (map[string]string, error) {
	files, err := render(st)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, f := range files {
		m[f.path] = f.content
	}
	return m, nil
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %v", StateFile, err)
	}
	if st.Files == nil {
		st.Files = map[string]string{}
	}
	return &st, nil
}

func writeState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, StateFile), append(b, '\n'), 0o644)
}

func readGoMod(dir string) (path string, data []byte, err error) {
	data, err = os.ReadFile(filepath.Join(dir, "go.mod"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	path = modfile.ModulePath(data)
	if path == "" {
		return "", nil, errors.New("init: go.mod declares no module")
	}
	return path, data, nil
}

// reinVersion is the rein version a new go.mod requires.
func reinVersion(o InitOptions) (string, error) {
	if o.ReinVersion != "" {
		if !strings.HasPrefix(o.ReinVersion, "v") {
			return "", fmt.Errorf("init: --rein-version %q: want a module version, e.g. v0.3.0", o.ReinVersion)
		}
		return o.ReinVersion, nil
	}
	if o.ReinReplace != "" {
		return "v0.0.0", nil
	}
	if v := builtVersion(); v != "" {
		return v, nil
	}
	return "", errors.New("init: this rein-gen was built from a rein checkout, so which rein version to require is unknown: pass --rein-version vX.Y.Z, or --rein-replace DIR for a local checkout")
}

// builtVersion is the version of rein this program was built from, when
// it is one the module proxy can serve.
func builtVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	mods := append([]*debug.Module{&info.Main}, info.Deps...)
	for _, m := range mods {
		if m.Path != ReinModule {
			continue
		}
		if m.Replace != nil || m.Version == "" || m.Version == "(devel)" || strings.Contains(m.Version, "+") {
			return ""
		}
		return m.Version
	}
	return ""
}

func writeGoMod(dir, mod, version, replace string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s\n\ngo %s\n\nrequire %s %s\n\ntool (\n", mod, GoVersion, ReinModule, version)
	for _, t := range tools {
		fmt.Fprintf(&b, "\t%s\n", t)
	}
	b.WriteString(")\n")
	if replace != "" {
		abs, err := filepath.Abs(replace)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "\nreplace %s => %s\n", ReinModule, abs)
	}
	return os.WriteFile(filepath.Join(dir, "go.mod"), []byte(b.String()), 0o644)
}

// addToGoMod requires rein and adds the tools to an existing go.mod, with
// the go command, where they are missing.
func addToGoMod(ctx context.Context, dir string, data []byte, o InitOptions) error {
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		return fmt.Errorf("init: go.mod: %v", err)
	}
	var args []string
	required := false
	for _, r := range f.Require {
		required = required || r.Mod.Path == ReinModule
	}
	if !required {
		version, err := reinVersion(o)
		if err != nil {
			return err
		}
		args = append(args, "-require="+ReinModule+"@"+version)
	}
	for _, t := range tools {
		if !slices.ContainsFunc(f.Tool, func(x *modfile.Tool) bool { return x.Path == t }) {
			args = append(args, "-tool="+t)
		}
	}
	if o.ReinReplace != "" && !slices.ContainsFunc(f.Replace, func(r *modfile.Replace) bool { return r.Old.Path == ReinModule }) {
		abs, err := filepath.Abs(o.ReinReplace)
		if err != nil {
			return err
		}
		args = append(args, "-replace="+ReinModule+"="+abs)
	}
	if f.Go == nil || (f.Go.Version != GoVersion && semverLess(f.Go.Version, GoVersion)) {
		args = append(args, "-go="+GoVersion)
	}
	if len(args) == 0 {
		return nil
	}
	fmt.Fprintf(o.Log, "rein-gen: go mod edit %s\n", strings.Join(args, " "))
	return run(ctx, dir, o.Log, "go", append([]string{"mod", "edit"}, args...)...)
}

// semverLess compares Go versions such as 1.24 and 1.26.0.
func semverLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(pa) {
			fmt.Sscan(pa[i], &x)
		}
		if i < len(pb) {
			fmt.Sscan(pb[i], &y)
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// run runs a command in dir with its output going to log.
func run(ctx context.Context, dir string, log io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	return cmd.Run()
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
