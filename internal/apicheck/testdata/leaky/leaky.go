// Package leaky is apicheck's planted failure: an exported API that names
// internal types in every place InternalTypes looks, and hides them where
// it must not look.
package leaky

import "github.com/ringwatch/ringwatch/internal/abi"

// New takes an internal type.
func New(t abi.TransportName) {}

// Options has an exported field of an internal type, and an unexported one
// that is nobody's business.
type Options struct {
	Transport abi.TransportName
	wakeup    abi.Header
}

// Alias is an internal type under a public name.
type Alias = abi.Header

// Source returns a slice of internal values from a method.
func (Options) Source() []abi.TransportName { return nil }

// Callback takes a function that takes an internal type.
type Callback func(map[string]*abi.Header)

// Hidden is not exported: its methods and signature are not API.
func hidden(abi.TransportName) {}

func (Options) unexported(abi.TransportName) {}

// fine has an internal type, but only exported names are API, except where
// an exported function hands it out.
type fine struct{ W abi.Header }

// Fine hands out an unexported type whose exported field is internal.
func Fine() fine { return fine{} }
