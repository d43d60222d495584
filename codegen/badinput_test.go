package codegen_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rein-k8s/rein/codegen"
)

// kubebuilder's layout, as `kubebuilder create api` writes it: a
// GroupVersion and a controller-runtime scheme.Builder, List types marked
// only +kubebuilder:object:root=true, no code-generator tags at all.
const (
	kbGroupVersion = `// Package v1 contains API Schema definitions for the batch v1 API group.
// +kubebuilder:object:generate=true
// +groupName=batch.tutorial.kubebuilder.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "batch.tutorial.kubebuilder.io", Version: "v1"}

	// SchemeBuilder is used to add go types to the GroupVersionKind scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
`
	kbTypes = `package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CronJobSpec defines the desired state of CronJob.
type CronJobSpec struct {
	// +kubebuilder:validation:MinLength=0
	Schedule string ` + "`json:\"schedule\"`" + `
	// +optional
	Suspend *bool ` + "`json:\"suspend,omitempty\"`" + `
}

// CronJobStatus defines the observed state of CronJob.
type CronJobStatus struct {
	// +optional
	LastScheduleTime *metav1.Time ` + "`json:\"lastScheduleTime,omitempty\"`" + `
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status

// CronJob is the Schema for the cronjobs API.
type CronJob struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `

	Spec   CronJobSpec   ` + "`json:\"spec,omitempty\"`" + `
	Status CronJobStatus ` + "`json:\"status,omitempty\"`" + `
}

// +kubebuilder:object:root=true

// CronJobList contains a list of CronJob.
type CronJobList struct {
	metav1.TypeMeta ` + "`json:\",inline\"`" + `
	metav1.ListMeta ` + "`json:\"metadata,omitempty\"`" + `
	Items           []CronJob ` + "`json:\"items\"`" + `
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster

// Schedule is cluster-scoped.
type Schedule struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
}

// +kubebuilder:object:root=true

// ScheduleList contains a list of Schedule.
type ScheduleList struct {
	metav1.TypeMeta ` + "`json:\",inline\"`" + `
	metav1.ListMeta ` + "`json:\"metadata,omitempty\"`" + `
	Items           []Schedule ` + "`json:\"items\"`" + `
}

func init() {
	SchemeBuilder.Register(&CronJob{}, &CronJobList{}, &Schedule{}, &ScheduleList{})
}
`
)

// plainKind is a rein-style kind named name in package pkg.
func plainKind(pkg, name string) string {
	return "package " + pkg + `

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/shapes/api/shared"
)

var _ shared.Labels

// +genclient
type ` + name + ` struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
	Note              string ` + "`json:\"note,omitempty\"`" + `
}
`
}

// TestAPIsOfEveryShape: a kubebuilder-layout package used as it is, a
// group with a dash in a folder of another name, and two groups with the
// same first label in folders of one name generate into a module that
// builds and vets, with one command and a ./api/... pattern; every output
// folder of a group is named after the group. A rerun is a no-op.
func TestAPIsOfEveryShape(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a module")
	}
	dir := newModule(t, "example.com/shapes", map[string]string{
		"api/batch/v1/groupversion_info.go": kbGroupVersion,
		"api/batch/v1/cronjob_types.go":     kbTypes,
		"api/audit/v1/doc.go":               "// +groupName=audit-trail.example.com\npackage v1\n",
		"api/audit/v1/types.go": strings.Replace(plainKind("v1", "Record"), "Note              string `json:\"note,omitempty\"`",
			"Labels            shared.Labels `json:\"labels,omitempty\"`", 1),
		// Shared types the audit group imports: they get deepcopy only.
		"api/shared/labels.go": "// +k8s:deepcopy-gen=package\n\n// Package shared holds types the API groups share.\npackage shared\n\n// Labels are sorted pairs.\ntype Labels struct {\n\tPairs []string `json:\"pairs,omitempty\"`\n}\n",
		// Two groups in folders of one name.
		"api/a/ops/v1/doc.go":   "// +groupName=ops.a.io\npackage v1\n",
		"api/a/ops/v1/types.go": plainKind("v1", "Runbook"),
		"api/b/ops/v1/doc.go":   "// +groupName=ops.b.io\npackage v1\n",
		"api/b/ops/v1/types.go": plainKind("v1", "Pager"),
		"api/common/types.go":   "// Package common holds shared types; it has no group.\npackage common\n\ntype Note struct{}\n",
	})
	var log bytes.Buffer
	opts := codegen.Options{Dir: dir, APIPackages: []string{"./api/..."}, OutputPackage: "example.com/shapes/generated", CRDDir: "config/crd", Log: &log}
	if err := codegen.Run(t.Context(), opts); err != nil {
		t.Fatalf("rein-gen: %v\n%s", err, log.String())
	}
	goCmd(t, dir, "vet", "./...")
	for _, want := range []string{
		// kubebuilder: its register stays, rein-gen adds what code-generator's clients need.
		"api/batch/v1/zz_generated.deepcopy.go", "api/batch/v1/zz_generated_register.go",
		"generated/controllers/batch/v1/cronjob.go", "generated/controllers/batch/v1/schedule.go",
		"config/crd/batch.tutorial.kubebuilder.io_cronjobs.yaml",
		// audit-trail.example.com → AuditTrail, package audittrail: every
		// output folder is named after it, not after the API folder (audit).
		"generated/controllers/audittrail/factory.go", "generated/clientset/versioned/typed/audittrail/v1/record.go",
		"generated/informers/externalversions/audittrail/v1/record.go", "generated/listers/audittrail/v1/record.go",
		// ops.a.io and ops.b.io, both in folders named ops → OpsA and OpsB.
		"generated/controllers/opsa/factory.go", "generated/controllers/opsb/factory.go",
		"generated/listers/opsa/v1/runbook.go", "generated/informers/externalversions/opsb/v1/pager.go",
		// The shared types: deepcopy, as their package asks.
		"api/shared/zz_generated.deepcopy.go",
		"generated/clientset/versioned/typed/opsa/v1/runbook.go", "generated/clientset/versioned/typed/opsb/v1/pager.go",
	} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("not generated: %s", want)
		}
	}
	for _, absent := range []string{"api/batch/v1/zz_generated_list_types.go", "api/common/zz_generated.deepcopy.go",
		"generated/clientset/versioned/typed/audit", "generated/listers/audit", "generated/informers/externalversions/audit", "generated/listers/ops"} {
		if _, err := os.Stat(filepath.Join(dir, absent)); err == nil {
			t.Errorf("generated, but should not be: %s", absent)
		}
	}
	register, _ := os.ReadFile(filepath.Join(dir, "api/batch/v1/zz_generated_register.go"))
	if !strings.Contains(string(register), "SchemeGroupVersion = GroupVersion") || strings.Contains(string(register), "AddToScheme") {
		t.Errorf("kubebuilder package: the register file should only add SchemeGroupVersion and Resource:\n%s", register)
	}
	clientset, _ := os.ReadFile(filepath.Join(dir, "generated/clientset/versioned/clientset.go"))
	for _, accessor := range []string{"AuditTrailV1()", "OpsAV1()", "OpsBV1()", "BatchV1()"} {
		if !strings.Contains(string(clientset), accessor) {
			t.Errorf("the clientset has no %s", accessor)
		}
	}
	log.Reset()
	if err := codegen.Run(t.Context(), opts); err != nil || !strings.Contains(log.String(), "up to date") {
		t.Fatalf("rerun: %v\n%s", err, log.String())
	}
}

// TestMistakesAreReportedBeforeAnythingIsWritten: each mistake fails with
// a message naming what is wrong and where, and the tree is untouched:
// not a file written, not a folder created.
func TestMistakesAreReportedBeforeAnythingIsWritten(t *testing.T) {
	good := map[string]string{
		"api/fleet/v1/doc.go":  fleetDoc,
		"api/fleet/v1/ship.go": shipV1,
	}
	for _, tc := range []struct {
		name   string
		change map[string]string
		apis   []string
		want   []string
	}{
		{"a marker with a bad value", map[string]string{"api/fleet/v1/ship.go": strings.Replace(shipV1, "Minimum=1", "MinLength=abc", 1)},
			nil, []string{"ship.go:15:", "+kubebuilder:validation:MinLength=abc", "abc"}},
		{"an unknown kubebuilder marker", map[string]string{"api/fleet/v1/ship.go": strings.Replace(shipV1, "Minimum=1", "Minimun=1", 1)},
			nil, []string{"ship.go:15:", "Minimun", "no such kubebuilder marker"}},
		{"a field without a json tag", map[string]string{"api/fleet/v1/ship.go": strings.Replace(shipV1, "Seen bool `json:\"seen,omitempty\"`", "Seen bool", 1)},
			nil, []string{"ship.go:", "ShipStatus.Seen", "json tag"}},
		{"a field of an undefined type", map[string]string{"api/fleet/v1/ship.go": strings.Replace(shipV1, "Crew int32", "Crew Crewmember", 1)},
			nil, []string{"ship.go:16:", "ShipSpec.Crew", "Crewmember is not declared"}},
		{"a field of a type a CRD cannot hold", map[string]string{"api/fleet/v1/ship.go": strings.Replace(shipV1, "Crew int32", "Crew chan int", 1)},
			nil, []string{"ShipSpec.Crew", "channel"}},
		{"two versions, no storage version", map[string]string{
			"api/fleet/v2/doc.go": fleetV2, "api/fleet/v2/ship.go": strings.Replace(shipV1, "package v1", "package v2", 1),
		}, []string{"./api/..."}, []string{"Ship of fleet.example.com", "v1, v2", "+kubebuilder:storageversion"}},
		{"a group that is not a DNS name", map[string]string{"api/fleet/v1/doc.go": "// +groupName=Fleet_Example\npackage v1\n"},
			nil, []string{"Fleet_Example", "not a valid API group"}},
		{"two groups named alike by hand", map[string]string{
			"api/fleet/v1/doc.go": "// +groupName=fleet.example.com\n// +groupGoName=Ops\npackage v1\n",
			"api/port/v1/doc.go":  "// +groupName=port.example.com\n// +groupGoName=Ops\npackage v1\n",
			"api/port/v1/dock.go": dockV1,
		}, []string{"./api/..."}, []string{"fleet.example.com and port.example.com", `"ops"`, "+groupGoName"}},
		{"a misspelt marker namespace", map[string]string{"api/fleet/v1/ship.go": strings.Replace(shipV1, "validation:Minimum=1", "valdation:Minimum=1", 1)},
			nil, []string{"api/fleet/v1/ship.go:15:", "no such kubebuilder marker", "a typo of +kubebuilder:validation:Minimum?"}},
		{"an RBAC marker with a misspelt argument", map[string]string{"internal/controller/roles.go": "package controller\n\n// +kubebuilder:rbac:groups=apps,resources=deployments,verb=get\n"},
			nil, []string{"internal/controller/roles.go:3:1:", `unknown argument "verb"`}},
		{"an API mistake and an RBAC mistake, both reported", map[string]string{
			"api/fleet/v1/ship.go": strings.Replace(shipV1, "Minimum=1", "Minimun=1", 1),
			"cmd/roles.go":         "package main\n\n// +kubebuilder:rbac:groups=apps,resources=deployments\n",
		}, nil, []string{"api/fleet/v1/ship.go:15:", "Minimun", "cmd/roles.go:3:1:", `missing argument "verbs"`}},
		{"a webhook marker for a kind the API lacks", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + webhookMarker("resources=boats")},
			nil, []string{"hooks.go:3:", "resource boats, is not a kind", "groups=fleet.example.com,versions=v1,resources=ships"}},
		{"a webhook marker without a path", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + strings.Replace(webhookMarker(""), "path=/validate-ship,", "", 1)},
			nil, []string{"hooks.go:3:", "no path=", "url=https://host/path"}},
		{"a webhook URL with a query", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + strings.Replace(webhookMarker(""), "path=/validate-ship,", "url=https://x.example.com/v?a=1,", 1)},
			nil, []string{"hooks.go:3:", "url=https://x.example.com/v?a=1", "without user, query or fragment"}},
		{"a webhook marker with a path and a URL", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + strings.Replace(webhookMarker(""), "path=/validate-ship,", "path=/validate-ship,url=https://x.example.com/v,", 1)},
			nil, []string{"hooks.go:3:", "path= and url= together"}},
		{"a webhook marker for CONNECT", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + webhookMarker("verbs=create;connect")},
			nil, []string{"hooks.go:3:", "verbs=connect"}},
		{"a webhook marker with side effects", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + webhookMarker("sideEffects=Some")},
			nil, []string{"hooks.go:3:", "sideEffects=Some", "None or NoneOnDryRun"}},
		{"a webhook marker with a bad value", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + webhookMarker("timeoutSeconds=ten")},
			nil, []string{"hooks.go:3:", "timeoutSeconds"}},
		{"two validating webhooks of one kind", map[string]string{"api/fleet/v1/hooks.go": "package v1\n\n" + webhookMarker("") + strings.NewReplacer("/validate-ship", "/validate-ship-2", "vship.", "vship2.").Replace(webhookMarker(""))},
			nil, []string{"hooks.go:4:", "a second validating webhook of Ship v1", "hooks.go:3"}},
		{"a spoke without ConvertFrom", map[string]string{
			"api/fleet/v1/hub.go": "package v1\n\nfunc (*Ship) Hub() {}\n",
			"api/fleet/v2/doc.go": fleetV2, "api/fleet/v2/ship.go": strings.Replace(shipV1, "package v1", "package v2", 1),
			"api/fleet/v2/convert.go": "package v2\n\nfunc (*Ship) ConvertTo(any) error { return nil }\n",
			"api/fleet/v1/ship.go":    strings.Replace(shipV1, "// +genclient\n", "// +genclient\n// +kubebuilder:storageversion\n", 1),
		}, []string{"./api/..."}, []string{"v2/ship.go:", "Ship v2 has no ConvertFrom", "v1 is the hub", "ConvertFrom(hub conversion.Hub) error"}},
		{"spokes without a hub", map[string]string{
			"api/fleet/v2/doc.go": fleetV2, "api/fleet/v2/ship.go": strings.Replace(shipV1, "package v1", "package v2", 1),
			"api/fleet/v2/convert.go": "package v2\n\nfunc (*Ship) ConvertTo(any) error { return nil }\nfunc (*Ship) ConvertFrom(any) error { return nil }\n",
			"api/fleet/v1/ship.go":    strings.Replace(shipV1, "// +genclient\n", "// +genclient\n// +kubebuilder:storageversion\n", 1),
		}, []string{"./api/..."}, []string{"v2/convert.go:", "no version of Ship is the hub", "func (*Ship) Hub() {}"}},
		{"a Hub on a type that is not a kind", map[string]string{"api/fleet/v1/note.go": "package v1\n\n// Note is no kind.\ntype Note struct{}\n\nfunc (*Note) Hub() {}\n"},
			nil, []string{"note.go:6:", "Note.Hub", "Note is not a kind", "makes nothing convertible"}},
		{"two hubs", map[string]string{
			"api/fleet/v1/hub.go": "package v1\n\nfunc (*Ship) Hub() {}\n",
			"api/fleet/v2/doc.go": fleetV2, "api/fleet/v2/ship.go": strings.Replace(shipV1, "package v1", "package v2", 1),
			"api/fleet/v2/hub.go":  "package v2\n\nfunc (*Ship) Hub() {}\n",
			"api/fleet/v1/ship.go": strings.Replace(shipV1, "// +genclient\n", "// +genclient\n// +kubebuilder:storageversion\n", 1),
		}, []string{"./api/..."}, []string{"two hub versions, v1 and v2"}},
		{"a pattern that matches nothing", nil, []string{"./apis/..."}, []string{"./apis/...", "no API package"}},
		{"no kind", map[string]string{"api/fleet/v1/ship.go": "package v1\n\ntype Ship struct{}\n"},
			nil, []string{"example.com/shipyard/api/fleet/v1 has no kind", "+genclient", "+kubebuilder:object:root=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "go.mod", "module example.com/shipyard\n\ngo 1.26.0\n")
			for name, content := range good {
				writeFile(t, dir, name, content)
			}
			for name, content := range tc.change {
				writeFile(t, dir, name, content)
			}
			apis := tc.apis
			if apis == nil {
				apis = []string{"./api/fleet/v1"}
			}
			before := mtimes(t, dir) + folders(t, dir)
			start := time.Now()
			err := codegen.Run(t.Context(), codegen.Options{Dir: dir, APIPackages: apis, OutputPackage: "example.com/shipyard/generated", CRDDir: "config/crd", RBACDir: "config/rbac"})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), dir) {
				t.Errorf("the error names a path by the module's folder, not relative to it:\n%v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			if after := mtimes(t, dir) + folders(t, dir); after != before {
				t.Errorf("the tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			t.Logf("reported after %v", elapsed.Round(time.Millisecond))
		})
	}
}

// TestMistakeFoundByTypes: a mistake syntax cannot show (a type another
// package lacks) is found by the CRD generator, before anything is written.
func TestMistakeFoundByTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("sets up a module")
	}
	dir := newModule(t, "example.com/shipyard", map[string]string{
		"api/fleet/v1/doc.go":  fleetDoc,
		"api/fleet/v1/ship.go": strings.Replace(shipV1, "Crew int32", "Crew metav1.Tiem", 1),
	})
	before := mtimes(t, dir) + folders(t, dir)
	start := time.Now()
	err := codegen.Run(t.Context(), codegen.Options{Dir: dir, APIPackages: []string{"./api/..."}, OutputPackage: "example.com/shipyard/generated", CRDDir: "config/crd"})
	if err == nil || !strings.Contains(err.Error(), "api/fleet/v1/ship.go:16:") || !strings.Contains(err.Error(), "undefined: metav1.Tiem") || strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v, want the file (relative to the module's root), line and missing type", err)
	}
	if after := mtimes(t, dir) + folders(t, dir); after != before {
		t.Errorf("the tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	t.Logf("reported after %v", time.Since(start).Round(time.Millisecond))
}

// folders lists every folder under dir.
func folders(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			b.WriteString(path + "/\n")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// webhookMarker is a valid +kubebuilder:webhook line for Ship v1 with one
// argument replaced (or added) by change, e.g. "verbs=delete".
func webhookMarker(change string) string {
	args := []string{"path=/validate-ship", "mutating=false", "failurePolicy=fail", "sideEffects=None", "groups=fleet.example.com",
		"resources=ships", "verbs=create;update", "versions=v1", "name=vship.fleet.example.com", "admissionReviewVersions=v1"}
	if change != "" {
		key, _, _ := strings.Cut(change, "=")
		replaced := false
		for i, a := range args {
			if strings.HasPrefix(a, key+"=") {
				args[i], replaced = change, true
			}
		}
		if !replaced {
			args = append(args, change)
		}
	}
	return "// +kubebuilder:webhook:" + strings.Join(args, ",") + "\n"
}
