package codegen_test

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var benchRounds = flag.Int("codegen-rounds", 1, "rounds of BenchmarkCodegen's cases, taking turns")

// BenchmarkCodegen measures, on one 3-group API (benchAPI) and in one run,
// what it takes to generate deepcopy functions, clientset, listers,
// informers and CRDs:
//
//   - separate-commands: deepcopy-gen, client-gen, lister-gen, informer-gen
//     (k8s.io/code-generator) and `controller-gen crd`
//     (sigs.k8s.io/controller-tools), at the versions of rein's go.mod,
//     one after the other as a generation script runs them, into a clean
//     output;
//   - rein-gen-first: the rein-gen binary into a clean output, with no
//     record of an earlier run;
//   - rein-gen-rerun: rein-gen again on the unchanged API;
//   - rein-gen-rerun-no-record: the same, but without rein-gen's record of
//     the last run (its fast path's), as on a machine with a fresh user
//     cache folder;
//   - rein-gen-after-change: rein-gen after a one-field change to one type.
//
// The tools are installed (go install …@version) and rein-gen is built
// once per process, outside the timed part; so are the two modules (one for
// the separate commands, one for rein-gen, with the same go.mod and API),
// which are generated once, tidied and built before anything is timed, so
// that no timed run adds a requirement to go.mod. Each iteration restores
// its starting state with the timer stopped.
//
// All timed runs but the reruns are on an API the build cache has not seen:
// one field of ShipSpec gets a name new to every iteration (benchField).
// Otherwise rein-gen's type-check of its output would find every package
// compiled by an earlier iteration, which a user's first run or a run after
// an edit does not. The separate commands type-check their inputs from
// source and their output not at all, so the build cache does not concern
// them.
//
// Run it with `make bench-codegen`, which asks for 5 rounds
// (-codegen-rounds 5). After the benchmark lines, the test binary prints
// the median and range of every case, its ratio to the separate commands,
// and the time of each command and of rein-gen's phases (from rein-gen's
// own log).
func BenchmarkCodegen(b *testing.B) {
	if testing.Short() {
		b.Skip("installs code-generator and controller-gen and generates a module many times")
	}
	f := benchSetup(b)
	// The cases take turns, round after round, so that the ratios compare
	// runs made under the same load (-count would repeat each case before
	// the next).
	for range *benchRounds {
		benchRound(b, f)
	}
}

func benchRound(b *testing.B, f *benchFixture) {
	b.Run("separate-commands", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			nonce := benchNonce()
			if err := f.prepare(f.separateDir, nonce); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			steps, err := f.runSeparate()
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			benchRecord("separate-commands", elapsed)
			for _, s := range steps {
				benchRecord("separate-commands: "+s.name, s.took)
			}
			if err := f.checkOutput(f.separateDir, false, nonce); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	b.Run("rein-gen-first", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			nonce := benchNonce()
			if err := f.prepare(f.reinDir, nonce); err != nil {
				b.Fatal(err)
			}
			f.reinAPI, f.reinOut = nonce, nil
			b.StartTimer()
			f.timedReinGen(b, "rein-gen-first")
		}
	})

	b.Run("rein-gen-rerun", func(b *testing.B) {
		b.StopTimer()
		if err := f.reinGenerated(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for range b.N {
			f.timedReinGen(b, "rein-gen-rerun")
		}
	})

	b.Run("rein-gen-rerun-no-record", func(b *testing.B) {
		b.StopTimer()
		if err := f.reinGenerated(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for range b.N {
			b.StopTimer()
			// The output is in place, but rein-gen has no record of it: a
			// fresh user cache folder (a CI machine), or another machine.
			if err := os.RemoveAll(f.cache); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			f.timedReinGen(b, "rein-gen-rerun-no-record")
		}
	})

	b.Run("rein-gen-after-change", func(b *testing.B) {
		b.StopTimer()
		if err := f.reinGenerated(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for range b.N {
			b.StopTimer()
			// The last run's field, renamed (or, after the setup, added).
			nonce := benchNonce()
			if err := f.writeShip(f.reinDir, nonce); err != nil {
				b.Fatal(err)
			}
			f.reinAPI = nonce
			b.StartTimer()
			f.timedReinGen(b, "rein-gen-after-change")
		}
	})
}

// benchFixture is shared by every run of BenchmarkCodegen in a process
// (-count 5 runs it five times).
type benchFixture struct {
	tmp         string
	bin         string   // the installed tools and rein-gen
	env         []string // of every timed command
	cache       string   // rein-gen's record of its runs (user cache folder)
	separateDir string   // the module the separate commands generate into
	reinDir     string   // the module rein-gen generates into
	// reinAPI is the variant of the API in reinDir (see benchField);
	// reinOut the variant whose output is there, nil for none.
	reinAPI string
	reinOut *string
}

const benchModule = "example.com/bench"

var (
	benchOnce     sync.Once
	benchFix      *benchFixture
	benchSetupErr error

	benchMu      sync.Mutex
	benchSamples = map[string][]time.Duration{}
	benchOrder   []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchSummary()
	if benchFix != nil {
		_ = os.RemoveAll(benchFix.tmp)
	}
	os.Exit(code)
}

func benchRecord(name string, d time.Duration) {
	benchMu.Lock()
	defer benchMu.Unlock()
	if _, ok := benchSamples[name]; !ok {
		benchOrder = append(benchOrder, name)
	}
	benchSamples[name] = append(benchSamples[name], d)
}

// benchSummary prints, for every case measured, the median, the range and
// the ratio of the median to the separate commands' median.
func benchSummary() {
	benchMu.Lock()
	defer benchMu.Unlock()
	if len(benchOrder) == 0 {
		return
	}
	median := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
	base := median(benchSamples["separate-commands"])
	fmt.Printf("\nSummary of BenchmarkCodegen: seconds, median (min–max, n); ratio = median / median of separate-commands\n")
	fmt.Printf("%s\n", benchBuilt)
	fmt.Printf("load average (1, 5, 15 min) before the first case: %s, now: %s\n", benchLoadBefore, benchLoad())
	for _, name := range benchOrder {
		s := benchSamples[name]
		m := median(s)
		ratio := ""
		if base > 0 && !strings.Contains(name, ": ") {
			ratio = fmt.Sprintf("  %.3f×", float64(m)/float64(base))
		}
		fmt.Printf("  %-50s %7s (%s–%s, n=%d)%s\n", name, secs(m), secs(slices.Min(s)), secs(slices.Max(s)), len(s), ratio)
	}
}

// benchLoad is the machine's load average, which says how much other work
// shared the cores.
func benchLoad() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

var benchLoadBefore, benchBuilt string

// benchTreeState names the commit of the checkout and the changes to
// codegen/ not committed, from which rein-gen was built.
func benchTreeState(root string) string {
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(out))
	}
	changes := strings.Join(strings.Fields(git("status", "--short", "codegen")), " ")
	if changes == "" {
		changes = "none"
	}
	return fmt.Sprintf("%q, changes to codegen/ not committed: %s", git("log", "-1", "--oneline"), changes)
}

func benchSetup(b *testing.B) *benchFixture {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	benchOnce.Do(func() { benchSetupErr = newBenchFixture(b) })
	if benchSetupErr != nil {
		b.Fatal(benchSetupErr)
	}
	return benchFix
}

// newBenchFixture sets benchFix (which TestMain removes, even after a
// failed setup) and prepares it.
func newBenchFixture(b *testing.B) error {
	start := time.Now()
	root := benchRepoRoot()
	tmp, err := os.MkdirTemp("", "rein-bench-codegen-")
	if err != nil {
		return err
	}
	f := &benchFixture{tmp: tmp, bin: filepath.Join(tmp, "bin"),
		separateDir: filepath.Join(tmp, "separate"), reinDir: filepath.Join(tmp, "rein")}
	benchFix = f

	// rein-gen keeps its record in the user cache folder: a folder of this
	// run instead, so that the benchmark leaves nothing behind and starts
	// from no record. The go command's build cache stays where it is.
	gocache, err := benchGo(root, nil, "env", "GOCACHE")
	if err != nil {
		return err
	}
	f.cache = filepath.Join(tmp, "cache")
	f.env = append(os.Environ(), "GOCACHE="+strings.TrimSpace(gocache), "XDG_CACHE_HOME="+f.cache)

	// The tools as their users install them, at rein's versions.
	out, err := benchGo(root, nil, "list", "-m", "-f", "{{.Version}}", "k8s.io/code-generator", "sigs.k8s.io/controller-tools")
	if err != nil {
		return err
	}
	versions := strings.Fields(out)
	if len(versions) != 2 {
		return fmt.Errorf("versions of code-generator and controller-tools: %q", out)
	}
	gobin := []string{"GOBIN=" + f.bin}
	var installs []string
	for _, cmd := range []string{"deepcopy-gen", "client-gen", "lister-gen", "informer-gen"} {
		installs = append(installs, "k8s.io/code-generator/cmd/"+cmd+"@"+versions[0])
	}
	if _, err := benchGo(tmp, gobin, append([]string{"install"}, installs...)...); err != nil {
		return err
	}
	if _, err := benchGo(tmp, gobin, "install", "sigs.k8s.io/controller-tools/cmd/controller-gen@"+versions[1]); err != nil {
		return err
	}
	if _, err := benchGo(root, nil, "build", "-o", filepath.Join(f.bin, "rein-gen"), "./codegen/cmd/rein-gen"); err != nil {
		return err
	}
	benchBuilt = fmt.Sprintf("code-generator %s, controller-tools %s; rein-gen built from %s at %s", versions[0], versions[1], root, benchTreeState(root))

	// Two modules with the same go.mod and API. Each is generated once and
	// tidied, so that no timed run has to add a requirement, and built, so
	// that both outputs are known to compile.
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return err
	}
	for _, dir := range []string{f.separateDir, f.reinDir} {
		files := map[string]string{
			"go.mod": "module " + benchModule + "\n\ngo 1.26.0\n\nrequire github.com/rein-k8s/rein v0.0.0\n\nreplace github.com/rein-k8s/rein => " + root + "\n",
			"go.sum": string(sum),
		}
		for name, content := range benchAPI {
			files[name] = content
		}
		if err := benchWriteFiles(dir, files); err != nil {
			return err
		}
		if _, err := benchGo(dir, nil, "mod", "edit", "-tool", "github.com/rein-k8s/rein/codegen/cmd/rein-gen"); err != nil {
			return err
		}
		if _, err := benchGo(dir, nil, "mod", "tidy"); err != nil {
			return err
		}
	}
	if _, err := f.runSeparate(); err != nil {
		return err
	}
	if err := f.checkOutput(f.separateDir, false, ""); err != nil {
		return err
	}
	if _, err := f.reinGen(); err != nil {
		return err
	}
	f.reinOut = new(string)
	for _, dir := range []string{f.separateDir, f.reinDir} {
		if _, err := benchGo(dir, nil, "mod", "tidy"); err != nil {
			return err
		}
		if _, err := benchGo(dir, nil, "build", "./..."); err != nil {
			return fmt.Errorf("the generated module does not build: %w", err)
		}
	}
	if err := f.checkOutput(f.reinDir, true, ""); err != nil {
		return err
	}
	b.Logf("set up in %v (not timed)", time.Since(start).Round(time.Millisecond))
	benchLoadBefore = benchLoad()
	return nil
}

type benchStep struct {
	name string
	took time.Duration
}

// runSeparate runs the five commands, in order, as a generation script
// does, with the flags that give rein-gen's layout: deepcopy into the API
// packages; clientset/versioned, listers and informers/externalversions
// under generated/; CRDs into config/crd.
func (f *benchFixture) runSeparate() ([]benchStep, error) {
	var apis []string
	for _, p := range benchAPIPackages {
		apis = append(apis, benchModule+"/"+p)
	}
	out := benchModule + "/generated"
	clientArgs := []string{"--clientset-name", "versioned", "--input-base", "",
		"--output-dir", "generated/clientset", "--output-pkg", out + "/clientset"}
	for _, a := range apis {
		clientArgs = append(clientArgs, "--input", a)
	}
	commands := [][]string{
		append([]string{"deepcopy-gen", "--output-file", "zz_generated.deepcopy.go"}, apis...),
		append([]string{"client-gen"}, clientArgs...),
		append([]string{"lister-gen", "--output-dir", "generated/listers", "--output-pkg", out + "/listers"}, apis...),
		append([]string{"informer-gen", "--output-dir", "generated/informers", "--output-pkg", out + "/informers",
			"--versioned-clientset-package", out + "/clientset/versioned", "--listers-package", out + "/listers"}, apis...),
		{"controller-gen", "crd", "paths=./api/...", "output:crd:artifacts:config=config/crd"},
	}
	var steps []benchStep
	for _, c := range commands {
		start := time.Now()
		cmd := exec.Command(filepath.Join(f.bin, c[0]), c[1:]...)
		cmd.Dir, cmd.Env = f.separateDir, f.env
		if out, err := cmd.CombinedOutput(); err != nil {
			return steps, fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
		}
		steps = append(steps, benchStep{c[0], time.Since(start)})
	}
	return steps, nil
}

// reinGen runs the rein-gen binary in reinDir and returns its log.
func (f *benchFixture) reinGen() (string, error) {
	var log bytes.Buffer
	cmd := exec.Command(filepath.Join(f.bin, "rein-gen"), "--output-package", benchModule+"/generated", "--crd-dir", "config/crd", "./api/...")
	cmd.Dir, cmd.Env = f.reinDir, f.env
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return log.String(), fmt.Errorf("rein-gen: %w\n%s", err, log.String())
	}
	return log.String(), nil
}

// benchPhase is a line of rein-gen's log that times a phase.
var benchPhase = regexp.MustCompile(`(?m)^rein-gen: (.+) in (\S+)$`)

// timedReinGen runs rein-gen with the timer running, then records the time
// and the phases rein-gen logs, and checks the output.
func (f *benchFixture) timedReinGen(b *testing.B, name string) {
	b.Helper()
	start := time.Now()
	log, err := f.reinGen()
	elapsed := time.Since(start)
	b.StopTimer()
	defer b.StartTimer()
	if err != nil {
		b.Fatal(err)
	}
	benchRecord(name, elapsed)
	var whole, phases time.Duration
	for _, m := range benchPhase.FindAllStringSubmatch(log, -1) {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			continue
		}
		if strings.HasSuffix(m[1], " done") {
			whole = d
			continue
		}
		phases += d
		benchRecord(name+": "+m[1], d)
	}
	if whole > 0 && phases > 0 {
		benchRecord(name+": the rest (load, validate, write)", whole-phases)
	}
	if whole > 0 {
		benchRecord(name+": whole run, rein-gen's clock", whole)
	}
	if strings.Contains(log, "up to date") {
		benchRecord(name+": runs that found the output up to date", elapsed)
	}
	out := f.reinAPI
	f.reinOut = &out
	if err := f.checkOutput(f.reinDir, true, out); err != nil {
		b.Fatal(err)
	}
}

// reinGenerated makes sure that reinDir holds the output of its API,
// untimed.
func (f *benchFixture) reinGenerated() error {
	if f.reinOut != nil && *f.reinOut == f.reinAPI {
		return nil
	}
	if _, err := f.reinGen(); err != nil {
		return err
	}
	out := f.reinAPI
	f.reinOut = &out
	return nil
}

// prepare makes dir a module that was never generated, with the API
// variant nonce: it removes the output tree, the CRD folder, the
// zz_generated files of the API packages and rein-gen's record.
func (f *benchFixture) prepare(dir, nonce string) error {
	if err := f.writeShip(dir, nonce); err != nil {
		return err
	}
	remove := []string{filepath.Join(dir, "generated"), filepath.Join(dir, "config")}
	if dir == f.reinDir {
		remove = append(remove, f.cache)
	}
	for _, d := range remove {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return filepath.WalkDir(filepath.Join(dir, "api"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), "zz_generated") {
			return err
		}
		return os.Remove(path)
	})
}

// writeShip writes the Ship type of dir in the variant nonce.
func (f *benchFixture) writeShip(dir, nonce string) error {
	return os.WriteFile(filepath.Join(dir, benchChangedFile), []byte(benchShip(nonce)), 0o644)
}

// checkOutput checks that a generation produced every part, and that the
// ships CRD has the API's variable field.
func (f *benchFixture) checkOutput(dir string, rein bool, nonce string) error {
	want := []string{
		"generated/clientset/versioned/clientset.go",
		"generated/clientset/versioned/typed/crew/v1alpha1/sailor.go",
		"generated/listers/fleet/v1/tug.go",
		"generated/informers/externalversions/factory.go",
		"generated/informers/externalversions/port/v1/dock.go",
		"config/crd/fleet.example.com_ships.yaml",
		"config/crd/fleet.example.com_tugs.yaml",
		"config/crd/port.example.com_docks.yaml",
		"config/crd/crew.example.com_sailors.yaml",
	}
	for _, p := range benchAPIPackages {
		want = append(want, p+"/zz_generated.deepcopy.go")
	}
	if rein {
		want = append(want, "generated/controllers/fleet/v1/ship.go", "generated/controllers/crew/v1alpha1/sailor.go")
	}
	for _, w := range want {
		if _, err := os.Stat(filepath.Join(dir, w)); err != nil {
			return fmt.Errorf("not generated: %w", err)
		}
	}
	crd, err := os.ReadFile(filepath.Join(dir, "config/crd/fleet.example.com_ships.yaml"))
	if err != nil {
		return err
	}
	has := bytes.Contains(crd, []byte(" knots"))
	if want := nonce != ""; has != want || (want && !bytes.Contains(crd, []byte(" knots"+nonce+":"))) {
		return fmt.Errorf("the ships CRD is not that of the API: want field knots%s: %v", nonce, want)
	}
	return nil
}

var benchNonces int

// benchNonce names a field that no build cache has seen.
func benchNonce() string {
	benchNonces++
	return strconv.FormatInt(time.Now().UnixNano(), 36) + "x" + strconv.Itoa(benchNonces)
}

func benchRepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func benchWriteFiles(dir string, files map[string]string) error {
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func benchGo(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return string(out), nil
}

// The benchmark's API: fleet.example.com/v1 (Ship, Tug),
// port.example.com/v1 (Dock) and crew.example.com/v1alpha1 (Sailor,
// cluster-scoped). The packages carry what code-generator's commands need
// (+genclient, deepcopy tags, list types, register.go with
// SchemeGroupVersion, AddToScheme and Resource), so rein-gen adds nothing
// but what the separate commands generate, and its controllers.
var benchAPIPackages = []string{"api/fleet/v1", "api/port/v1", "api/crew/v1alpha1"}

// benchChangedFile holds the type whose field changes: ShipSpec.
const benchChangedFile = "api/fleet/v1/ship.go"

// benchField is the field of ShipSpec that differs between variants of the
// API: none for nonce "", else an int32 named after nonce.
func benchField(nonce string) string {
	if nonce == "" {
		return ""
	}
	return "\t// Cruising speed.\n\t// +kubebuilder:validation:Maximum=40\n\t// +optional\n\tKnots" + nonce + " int32 `json:\"knots" + nonce + ",omitempty\"`\n"
}

// benchShip is api/fleet/v1/ship.go in the variant nonce.
func benchShip(nonce string) string {
	const anchor = "\t// Ports are the ports the ship may call at."
	src := benchAPI[benchChangedFile]
	if !strings.Contains(src, anchor) {
		panic("benchShip: the anchor is gone from ship.go")
	}
	return strings.Replace(src, anchor, benchField(nonce)+anchor, 1)
}

func benchDoc(group, version string) string {
	return "// Package " + version + " is the " + group + "/" + version + " API.\n//\n// +k8s:deepcopy-gen=package\n// +groupName=" + group + "\npackage " + version + "\n"
}

func benchRegister(group, version string, kinds ...string) string {
	var known strings.Builder
	for _, k := range kinds {
		known.WriteString("\t\t&" + k + "{},\n\t\t&" + k + "List{},\n")
	}
	return `package ` + version + `

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group.
const GroupName = "` + group + `"

// SchemeGroupVersion is the group and version of this package.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "` + version + `"}

// Kind takes an unqualified kind and returns a group-qualified GroupKind.
func Kind(kind string) schema.GroupKind { return SchemeGroupVersion.WithKind(kind).GroupKind() }

// Resource takes an unqualified resource and returns a group-qualified GroupResource.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

var (
	// SchemeBuilder registers the types of this package.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion,
` + known.String() + `	)
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
`
}

// benchKind is a kind with its spec, status and list; extra is put on the
// kind's type (scope, print columns).
func benchKind(version, name, extra, spec, status string) string {
	return `package ` + version + `

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ` + name + ` is a kind of the benchmark's API.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
` + extra + `type ` + name + ` struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `

	Spec   ` + name + `Spec   ` + "`json:\"spec\"`" + `
	Status ` + name + `Status ` + "`json:\"status,omitempty\"`" + `
}

// ` + name + `Spec is the wanted state.
type ` + name + `Spec struct {
` + spec + `}

// ` + name + `Status is the observed state.
type ` + name + `Status struct {
	// ObservedGeneration is the generation last acted on.
	// +optional
	ObservedGeneration int64 ` + "`json:\"observedGeneration,omitempty\"`" + `
	// Conditions are the latest observations.
	// +optional
	Conditions []metav1.Condition ` + "`json:\"conditions,omitempty\"`" + `
` + status + `}

// ` + name + `List is a list of ` + name + `.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type ` + name + `List struct {
	metav1.TypeMeta ` + "`json:\",inline\"`" + `
	metav1.ListMeta ` + "`json:\"metadata,omitempty\"`" + `
	Items           []` + name + " `json:\"items\"`" + `
}
`
}

var benchAPI = map[string]string{
	"api/fleet/v1/doc.go":      benchDoc("fleet.example.com", "v1"),
	"api/fleet/v1/register.go": benchRegister("fleet.example.com", "v1", "Ship", "Tug"),
	"api/fleet/v1/ship.go": benchKind("v1", "Ship", "// +kubebuilder:printcolumn:name=\"Crew\",type=integer,JSONPath=`.spec.crew`\n", `	// Crew is the number of sailors aboard.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=500
	Crew int32 `+"`json:\"crew\"`"+`
	// Flag is the flag state, two capital letters.
	// +kubebuilder:validation:Pattern=`+"`^[A-Z]{2}$`"+`
	Flag string `+"`json:\"flag\"`"+`
	// Class is the kind of ship.
	// +kubebuilder:validation:Enum=frigate;schooner;tanker
	// +optional
	Class string `+"`json:\"class,omitempty\"`"+`
	// Ports are the ports the ship may call at.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Ports []string `+"`json:\"ports,omitempty\"`"+`
`, `	// Position is where the ship was last seen.
	// +optional
	Position string `+"`json:\"position,omitempty\"`"+`
`),
	"api/fleet/v1/tug.go": benchKind("v1", "Tug", "", `	// Power is the engine power in kW.
	// +kubebuilder:validation:Minimum=100
	Power int32 `+"`json:\"power\"`"+`
	// Towing names the ship being towed.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Towing string `+"`json:\"towing,omitempty\"`"+`
	// Labels select the ships this tug serves.
	// +optional
	Labels map[string]string `+"`json:\"labels,omitempty\"`"+`
`, `	// Busy is true while towing.
	// +optional
	Busy bool `+"`json:\"busy,omitempty\"`"+`
`),
	"api/port/v1/doc.go":      benchDoc("port.example.com", "v1"),
	"api/port/v1/register.go": benchRegister("port.example.com", "v1", "Dock"),
	"api/port/v1/dock.go": benchKind("v1", "Dock", "", `	// Length is the dock's length in metres.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=1000
	Length int32 `+"`json:\"length\"`"+`
	// Cranes are the cranes by name, with their lifting capacity in tonnes.
	// +optional
	Cranes map[string]int32 `+"`json:\"cranes,omitempty\"`"+`
	// Depth is the water depth, as a quantity ("12m").
	// +kubebuilder:validation:Pattern=`+"`^[0-9]+m$`"+`
	// +optional
	Depth string `+"`json:\"depth,omitempty\"`"+`
`, `	// Occupant is the ship at the dock.
	// +optional
	Occupant *string `+"`json:\"occupant,omitempty\"`"+`
`),
	"api/crew/v1alpha1/doc.go":      benchDoc("crew.example.com", "v1alpha1"),
	"api/crew/v1alpha1/register.go": benchRegister("crew.example.com", "v1alpha1", "Sailor"),
	"api/crew/v1alpha1/sailor.go": benchKind("v1alpha1", "Sailor", "// +genclient:nonNamespaced\n// +kubebuilder:resource:scope=Cluster\n", `	// Rank is the sailor's rank.
	// +kubebuilder:validation:Enum=captain;mate;boatswain;deckhand
	Rank string `+"`json:\"rank\"`"+`
	// Ship names the ship the sailor serves on.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Ship string `+"`json:\"ship,omitempty\"`"+`
`, `	// Aboard is true while the sailor is on the ship.
	// +optional
	Aboard bool `+"`json:\"aboard,omitempty\"`"+`
`),
}
