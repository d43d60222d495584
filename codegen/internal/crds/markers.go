package crds

import (
	"fmt"
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
