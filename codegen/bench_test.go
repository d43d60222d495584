package codegen_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkCodegen measures, on one 3-group API (benchAPI) and in one run,
// what it takes to generate deepcopy, clientset, listers, informers and
// CRDs:
//
//   - separate-commands: deepcopy-gen, client-gen, lister-gen, informer-gen
//     (k8s.io/code-generator) and `controller-gen crd`
//     (sigs.k8s.io/controller-tools), at the versions of rein's go.mod, run
//     one after the other as a user's script runs them, into a clean output;
//   - rein-gen-first: the rein-gen binary into a clean output;
//   - rein-gen-rerun: rein-gen again on the unchanged API;
//   - rein-gen-after-change: rein-gen after one field was added to (or
//     removed from) one type.
//
// The tools are installed (go install …@version) and rein-gen is built
// once per process, outside the timed part; so are the two modules (one
// for the separate commands, one for rein-gen, with the same go.mod), which
// are generated once, tidied and built before anything is timed. Each
// iteration restores its starting state with the timer stopped. Run it
// with `make bench-codegen`: after the benchmark lines, the test binary
// prints the median, range and ratio to the separate commands of every case.
func BenchmarkCodegen(b *testing.B) {
	if testing.Short() {
		b.Skip("installs code-generator and controller-gen and generates a module many times")
	}
	f := benchSetup(b)

	b.Run("separate-commands", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			if err := f.clean(f.separateDir); err != nil {
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
			if err := f.checkOutput(f.separateDir, false, false); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	b.Run("rein-gen-first", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			if err := f.setReinAPI(false); err != nil {
				b.Fatal(err)
			}
			if err := f.clean(f.reinDir); err != nil {
				b.Fatal(err)
			}
			f.generated = nil
			b.StartTimer()
			f.timedReinGen(b, "rein-gen-first")
		}
	})

	b.Run("rein-gen-rerun", func(b *testing.B) {
		b.StopTimer()
		if err := f.reinGenerated(b, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for range b.N {
			f.timedReinGen(b, "rein-gen-rerun")
		}
	})

	b.Run("rein-gen-after-change", func(b *testing.B) {
		b.StopTimer()
		if err := f.reinGenerated(b, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for range b.N {
			b.StopTimer()
			// Every iteration is one field away from the last: added,
			// then removed, then added...
			if err := f.setReinAPI(!*f.generated); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			f.timedReinGen(b, "rein-gen-after-change")
		}
	})
}

// benchFixture is shared by every run of BenchmarkCodegen in a process
// (-count 5 runs it five times).
type benchFixture struct {
	tmp         string
	bin         string // folder of the installed tools and rein-gen
	separateDir string // module the separate commands generate into
	reinDir     string // module rein-gen generates into
	// generated is the variant of the API (with the extra field or not)
	// whose output is in reinDir; nil when none is.
	generated *bool
	// changed is the variant of the API whose source is in reinDir.
	changed bool
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
// the ratio of the median to the separate commands'.
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
	secs := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
	base := median(benchSamples["separate-commands"])
	fmt.Printf("\nBenchmarkCodegen: seconds, median (min–max, n); ratio = median / separate-commands' median\n")
	for _, name := range benchOrder {
		s := benchSamples[name]
		m := median(s)
		ratio := ""
		if base > 0 && !strings.HasPrefix(name, "separate-commands:") {
			ratio = fmt.Sprintf("  %.3f×", float64(m)/float64(base))
		}
		fmt.Printf("  %-36s %6s (%s–%s, n=%d)%s\n", name, secs(m), secs(slices.Min(s)), secs(slices.Max(s)), len(s), ratio)
	}
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
	b.Logf("code-generator %s, controller-tools %s, rein-gen from %s", versions[0], versions[1], root)

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
	if err := f.checkOutput(f.separateDir, false, false); err != nil {
		return err
	}
	if _, err := f.reinGen(); err != nil {
		return err
	}
	f.generated = new(bool)
	for _, dir := range []string{f.separateDir, f.reinDir} {
		if _, err := benchGo(dir, nil, "mod", "tidy"); err != nil {
			return err
		}
		if _, err := benchGo(dir, nil, "build", "./..."); err != nil {
			return fmt.Errorf("the generated module does not build: %w", err)
		}
	}
	b.Logf("set up in %v (not timed)", time.Since(start).Round(time.Millisecond))
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
		if err := benchExec(f.separateDir, filepath.Join(f.bin, c[0]), c[1:]...); err != nil {
			return steps, err
		}
		steps = append(steps, benchStep{c[0], time.Since(start)})
	}
	return steps, nil
}

// reinGen runs the rein-gen binary in reinDir and returns its log.
func (f *benchFixture) reinGen() (string, error) {
	var log bytes.Buffer
	cmd := exec.Command(filepath.Join(f.bin, "rein-gen"), "--output-package", benchModule+"/generated", "--crd-dir", "config/crd", "./api/...")
	cmd.Dir = f.reinDir
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return log.String(), fmt.Errorf("rein-gen: %w\n%s", err, log.String())
	}
	return log.String(), nil
}

// timedReinGen runs rein-gen with the timer running, records the time and
// checks the output with the timer stopped.
func (f *benchFixture) timedReinGen(b *testing.B, name string) {
	b.Helper()
	start := time.Now()
	_, err := f.reinGen()
	elapsed := time.Since(start)
	b.StopTimer()
	defer b.StartTimer()
	if err != nil {
		b.Fatal(err)
	}
	benchRecord(name, elapsed)
	changed := f.changed
	f.generated = &changed
	if err := f.checkOutput(f.reinDir, true, changed); err != nil {
		b.Fatal(err)
	}
}

// reinGenerated brings reinDir to the output of the API variant, untimed.
func (f *benchFixture) reinGenerated(b *testing.B, changed bool) error {
	if err := f.setReinAPI(changed); err != nil {
		return err
	}
	if f.generated != nil && *f.generated == changed {
		return nil
	}
	if _, err := f.reinGen(); err != nil {
		return err
	}
	f.generated = &changed
	return nil
}

// setReinAPI writes the Ship type of reinDir with the extra field or without.
func (f *benchFixture) setReinAPI(changed bool) error {
	if f.changed == changed {
		return nil
	}
	src := benchAPI[benchChangedFile]
	if changed {
		src = strings.Replace(src, benchFieldAnchor, benchExtraField+benchFieldAnchor, 1)
	}
	if err := os.WriteFile(filepath.Join(f.reinDir, benchChangedFile), []byte(src), 0o644); err != nil {
		return err
	}
	f.changed = changed
	return nil
}

// clean removes every generated file of a module: the output tree, the CRD
// folder and the zz_generated files of the API packages.
func (f *benchFixture) clean(dir string) error {
	for _, d := range []string{"generated", "config"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
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

// checkOutput checks that a generation produced every part, and that the
// ships CRD has the extra field exactly when the API does.
func (f *benchFixture) checkOutput(dir string, rein, changed bool) error {
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
	if has := bytes.Contains(crd, []byte(benchExtraFieldJSON+":")); has != changed {
		return fmt.Errorf("the ships CRD has field %s: %v, the API: %v", benchExtraFieldJSON, has, changed)
	}
	return nil
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

func benchExec(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return nil
}

// The benchmark's API: fleet.example.com/v1 (Ship, Tug),
// port.example.com/v1 (Dock) and crew.example.com/v1alpha1 (Sailor,
// cluster-scoped). The packages carry what code-generator's commands need
// (+genclient, deepcopy tags, list types, register.go with
// SchemeGroupVersion, AddToScheme and Resource), so rein-gen adds nothing
// but what the separate commands generate, and its controllers.
var benchAPIPackages = []string{"api/fleet/v1", "api/port/v1", "api/crew/v1alpha1"}

// The one-field change of rein-gen-after-change: a field added to ShipSpec.
const (
	benchChangedFile    = "api/fleet/v1/ship.go"
	benchFieldAnchor    = "\t// Ports are the ports the ship may call at."
	benchExtraFieldJSON = "speedKnots"
	benchExtraField     = "\t// SpeedKnots is the cruising speed.\n\t// +kubebuilder:validation:Maximum=40\n\t// +optional\n\tSpeedKnots int32 `json:\"speedKnots,omitempty\"`\n"
)

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
