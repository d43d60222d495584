package crds

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/controller-tools/pkg/applyconfiguration"
	"sigs.k8s.io/controller-tools/pkg/crd"
	"sigs.k8s.io/controller-tools/pkg/deepcopy"
	"sigs.k8s.io/controller-tools/pkg/markers"
	"sigs.k8s.io/controller-tools/pkg/rbac"
	"sigs.k8s.io/controller-tools/pkg/webhook"
)

// Target is what a marker sits on.
type Target int

// The places a marker can describe.
const (
	OnPackage Target = iota
	OnType
	OnField
)

var (
	registryOnce sync.Once
	registry     *markers.Registry // the CRD generator's markers
	known        *markers.Registry // every controller-tools generator's
	registryErr  error
	// namespaces are the second elements of the known +kubebuilder:
	// markers' names (validation, printcolumn, resource, rbac, ...).
	namespaces map[string]bool
	// knownNames are the known +kubebuilder: markers' names, sorted.
	knownNames []string
)

func loadRegistries() {
	registry = &markers.Registry{}
	known = &markers.Registry{}
	registryErr = crd.Generator{}.RegisterMarkers(registry)
	for _, g := range []interface {
		RegisterMarkers(*markers.Registry) error
	}{crd.Generator{}, deepcopy.Generator{}, rbac.Generator{}, webhook.Generator{}, applyconfiguration.Generator{}} {
		if err := g.RegisterMarkers(known); err != nil && registryErr == nil {
			registryErr = err
		}
	}
	namespaces = map[string]bool{}
	seen := map[string]bool{}
	for _, d := range known.AllDefinitions() {
		rest, ok := strings.CutPrefix(d.Name, "kubebuilder:")
		if !ok || seen[d.Name] {
			continue
		}
		seen[d.Name] = true
		knownNames = append(knownNames, d.Name)
		ns, _, _ := strings.Cut(rest, ":")
		namespaces[ns] = true
	}
	slices.Sort(knownNames)
}

// UnknownMarker judges a +kubebuilder: marker that KnownMarker does not
// know. It is a typo when it lies in a namespace of the known markers
// (+kubebuilder:validation:Minimun) or one a letter or two away from one
// (+kubebuilder:valdation:Minimum); then suggestion is the nearest known
// marker, if one is near, and docs the page of the reference to read.
// Otherwise it belongs to another tool (+kubebuilder:docs-gen:collapse, of
// the kubebuilder book's tooling): typo is false, and the marker is no
// generator's concern.
func UnknownMarker(text string) (typo bool, suggestion, docs string) {
	registryOnce.Do(loadRegistries)
	name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(text), "+"), "=")
	rest, ok := strings.CutPrefix(name, "kubebuilder:")
	if !ok {
		return false, "", ""
	}
	ns, _, _ := strings.Cut(rest, ":")
	typo = namespaces[ns]
	if !typo && len(ns) >= 4 {
		for known := range namespaces {
			if len(known) >= 4 && editDistance(ns, known) <= 2 {
				typo = true
				break
			}
		}
	}
	if !typo {
		return false, "", ""
	}
	// The nearest known name, compared with as many of the marker's
	// elements as it has (the rest may be arguments:
	// +kubebuilder:printcolum:name=x is +kubebuilder:printcolumn's).
	best := 4 // suggest only a name at most 3 edits away
	parts := strings.Split(strings.ToLower(name), ":")
	for _, k := range knownNames {
		n := strings.Count(k, ":") + 1
		if n > len(parts) {
			continue
		}
		d := editDistance(strings.Join(parts[:n], ":"), strings.ToLower(k))
		if d < best || (d == best && suggestion != "" && len(k) > len(suggestion)-1) {
			best, suggestion = d, "+"+k
		}
	}
	docs = "https://book.kubebuilder.io/reference/markers"
	if ns == "validation" || strings.HasPrefix(strings.TrimPrefix(suggestion, "+kubebuilder:"), "validation:") {
		docs = "https://book.kubebuilder.io/reference/markers/crd-validation"
	}
	return true, suggestion, docs
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// KnownMarker reports whether any controller-tools generator (CRDs,
// deepcopy, RBAC, webhooks, apply configurations) knows the marker, on any
// target: a +kubebuilder: marker none knows is a typo that would otherwise
// be ignored without a word.
func KnownMarker(text string) bool {
	registryOnce.Do(loadRegistries)
	if registryErr != nil {
		return true
	}
	for _, t := range []markers.TargetType{markers.DescribesPackage, markers.DescribesType, markers.DescribesField} {
		if known.Lookup(text, t) != nil {
			return true
		}
	}
	return false
}

// CheckMarker parses one marker line ("+kubebuilder:validation:MinLength=3")
// the way the CRD generator will, without loading any package, so that a
// mistake is reported before anything is generated. Markers the CRD
// generator does not know (code-generator's, rein's) are not its to judge:
// nil.
func CheckMarker(text string, on Target) error {
	registryOnce.Do(loadRegistries)
	if registryErr != nil {
		return fmt.Errorf("crds: the CRD generator's markers: %w", registryErr)
	}
	if !strings.HasPrefix(text, "+") {
		return nil
	}
	target := map[Target]markers.TargetType{OnPackage: markers.DescribesPackage, OnType: markers.DescribesType, OnField: markers.DescribesField}[on]
	def := registry.Lookup(text, target)
	if def == nil {
		return nil
	}
	if _, err := def.Parse(text); err != nil {
		return err
	}
	return nil
}
