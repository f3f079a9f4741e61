//go:build race

package consumer

// touchAhead is off under the race detector: see touch.go.
const touchAhead = false
