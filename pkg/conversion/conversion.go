package conversion

import "k8s.io/apimachinery/pkg/runtime"

// Hub marks the version of a kind that every other version converts to
// and from (hub and spoke: n versions need 2(n-1) functions, not n(n-1)).
// Its Go type declares an empty Hub method:
//
//	func (*VirtualMachine) Hub() {}
type Hub interface {
	runtime.Object
	Hub()
}

// Convertible is a version of a kind that is not its hub: it converts
// itself to the hub and fills itself from it. Both are written by the
// user; a field one version lacks is usually kept in an annotation so
// that a round trip loses nothing.
type Convertible interface {
	runtime.Object
	ConvertTo(hub Hub) error
	ConvertFrom(hub Hub) error
}
