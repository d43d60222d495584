// Package conversion holds the two interfaces that make a kind's versions
// convertible through a hub (hub and spoke): Hub, declared by the version
// every other version converts to and from, and Convertible, implemented
// by each of those other versions.
//
// It is a package of its own, depending on apimachinery's runtime alone,
// because API packages implement these interfaces: importing it adds no
// server, client or webhook code to a module that only shares its API
// types. The conversion webhook that uses them is pkg/webhook's
// Conversion; rein-gen gives a kind's CRD the webhook conversion strategy
// when one of its versions is a Hub and the others are Convertible.
package conversion
