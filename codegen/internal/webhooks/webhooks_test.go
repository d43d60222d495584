package webhooks

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-tools/pkg/genall"
	"sigs.k8s.io/controller-tools/pkg/loader"
	"sigs.k8s.io/controller-tools/pkg/webhook"
	sigsyaml "sigs.k8s.io/yaml"
)

// markers cover both sorts, every optional argument and a patch.
var markers = []string{
	"+kubebuilder:webhook:path=/validate-ship,mutating=false,failurePolicy=fail,sideEffects=None,groups=fleet.example.com,resources=ships,verbs=create;update;delete,versions=v1,name=vship.fleet.example.com,admissionReviewVersions=v1,serviceName=fleet-webhook,serviceNamespace=fleet,timeoutSeconds=7,matchPolicy=Exact",
	"+kubebuilder:webhook:path=/mutate-ship,mutating=true,failurePolicy=ignore,sideEffects=NoneOnDryRun,groups=fleet.example.com,resources=ships,verbs=create,versions=v1,name=mship.fleet.example.com,admissionReviewVersions=v1;v1beta1,serviceName=fleet-webhook,serviceNamespace=fleet,reinvocationPolicy=IfNeeded,patch=`{\"objectSelector\":{\"matchLabels\":{\"fleet\":\"yes\"}}}`",
	"+kubebuilder:webhook:path=/validate-harbor,mutating=false,failurePolicy=fail,sideEffects=None,groups=fleet.example.com,resources=harbors,verbs=*,versions=v1,name=vharbor.fleet.example.com,admissionReviewVersions=v1,serviceName=fleet-webhook,serviceNamespace=fleet,servicePort=8443",
}

// TestManifestsAreControllerGens: for the same markers, Manifests writes
// the configurations controller-gen's webhook Generator writes.
func TestManifestsAreControllerGens(t *testing.T) {
	var configs []Config
	for _, m := range markers {
		c, err := ParseMarker(m)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		configs = append(configs, c)
	}
	ours, err := Manifests(configs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	theirs := controllerGen(t, markers)
	gotV, gotM := decode(t, ours)
	wantV, wantM := decode(t, theirs)
	if !reflect.DeepEqual(gotV, wantV) || !reflect.DeepEqual(gotM, wantM) {
		t.Fatalf("Manifests:\n%s\ncontroller-gen:\n%s", ours, theirs)
	}
	if len(gotV.Webhooks) != 2 || len(gotM.Webhooks) != 1 || gotM.Webhooks[0].ObjectSelector == nil {
		t.Fatalf("not the webhooks of the markers:\n%s", ours)
	}
}

// TestManifestsFillTheService: a marker that names no Service gets
// Options.Service; one that names it keeps its own.
func TestManifestsFillTheService(t *testing.T) {
	own, err := ParseMarker(markers[0])
	if err != nil {
		t.Fatal(err)
	}
	bare, err := ParseMarker(strings.NewReplacer(",serviceName=fleet-webhook,serviceNamespace=fleet", "", "vship", "vship2", "/validate-ship", "/v2").Replace(markers[0]))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Manifests([]Config{own, bare}, Options{Service: Service{Namespace: "ops", Name: "hooks"}, ValidatingName: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	v, m := decode(t, out)
	if m != nil || v.Name != "fleet" {
		t.Fatalf("configurations %q and %v", v.Name, m)
	}
	for _, w := range v.Webhooks {
		svc := w.ClientConfig.Service
		want := map[string]string{"vship.fleet.example.com": "fleet/fleet-webhook", "vship2.fleet.example.com": "ops/hooks"}[w.Name]
		if got := svc.Namespace + "/" + svc.Name; got != want {
			t.Errorf("%s calls %s, want %s", w.Name, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	for change, want := range map[string]string{
		"sideEffects=Some":     "sideEffects=Some",
		"timeoutSeconds=31":    "timeoutSeconds=31",
		"failurePolicy=maybe":  "failurePolicy=maybe",
		"sideEffects=None":     "",
		"failurePolicy=Ignore": "",
	} {
		key, _, _ := strings.Cut(change, "=")
		text := markers[0]
		i := strings.Index(text, key+"=")
		if i < 0 {
			text += "," + change
		} else {
			end := strings.IndexByte(text[i:], ',')
			text = text[:i] + change + text[i+end:]
		}
		c, err := ParseMarker(text)
		if err != nil {
			t.Fatal(err)
		}
		err = Check(c)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: Check = %v, want %q", change, err, want)
		}
	}
}

func TestAddConversion(t *testing.T) {
	crd := []byte("# header\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ships.fleet.example.com\nspec:\n  group: fleet.example.com\n  names:\n    kind: Ship\n    plural: ships\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n")
	out, err := AddConversion(crd, Conversion(Service{Namespace: "fleet", Name: "hooks"}, "/convert-fleet"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, crd[:bytes.Index(crd, []byte("spec:"))]) || !bytes.HasSuffix(out, crd[bytes.Index(crd, []byte("  group:")):]) {
		t.Errorf("the rest of the manifest changed:\n%s", out)
	}
	var back apiextensionsv1.CustomResourceDefinition
	if err := sigsyaml.UnmarshalStrict(out[bytes.Index(out, []byte("apiVersion")):], &back); err != nil {
		t.Fatal(err)
	}
	w := back.Spec.Conversion.Webhook
	if back.Spec.Conversion.Strategy != apiextensionsv1.WebhookConverter || w.ClientConfig.Service.Name != "hooks" || *w.ClientConfig.Service.Path != "/convert-fleet" ||
		!reflect.DeepEqual(w.ConversionReviewVersions, []string{"v1"}) || back.Spec.Group != "fleet.example.com" {
		t.Errorf("read back %+v", back.Spec)
	}
	if _, err := AddConversion([]byte("kind: Nothing\n"), Conversion(Service{}, "/c")); err == nil {
		t.Error("a manifest without spec was accepted")
	}
}

// controllerGen runs controller-tools' webhook Generator on a package
// holding markers and returns what it writes.
func controllerGen(t *testing.T, markers []string) []byte {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/hooks\n\ngo 1.26.0\n")
	var src strings.Builder
	src.WriteString("package hooks\n\n")
	for _, m := range markers {
		src.WriteString("// " + m + "\n\n")
	}
	src.WriteString("// T is here so the markers are not the package doc.\ntype T struct{}\n")
	write("hooks.go", src.String())
	var gen genall.Generator = webhook.Generator{}
	t.Chdir(dir) // the loader runs go list in the working directory
	rt, err := genall.Generators{&gen}.ForRoots("./...")
	if err != nil {
		t.Fatal(err)
	}
	out := &memory{files: map[string]*bytes.Buffer{}}
	rt.OutputRules = genall.OutputRules{Default: out}
	if failed := rt.Run(); failed {
		t.Fatal("controller-gen's webhook generator failed")
	}
	return out.files["manifests.yaml"].Bytes()
}

type memory struct{ files map[string]*bytes.Buffer }

func (m *memory) Open(_ *loader.Package, path string) (io.WriteCloser, error) {
	b := &bytes.Buffer{}
	m.files[path] = b
	return nopCloser{b}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func decode(t *testing.T, docs []byte) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration) {
	t.Helper()
	var v *admissionregistrationv1.ValidatingWebhookConfiguration
	var m *admissionregistrationv1.MutatingWebhookConfiguration
	for _, doc := range strings.Split(string(docs), "\n---\n") {
		var meta struct{ Kind string }
		if err := sigsyaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		var into any
		switch meta.Kind {
		case "":
			continue
		case "ValidatingWebhookConfiguration":
			v = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			into = v
		case "MutatingWebhookConfiguration":
			m = &admissionregistrationv1.MutatingWebhookConfiguration{}
			into = m
		default:
			t.Fatalf("a document of kind %s", meta.Kind)
		}
		if err := sigsyaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("%v:\n%s", err, doc)
		}
	}
	return v, m
}
