package apicheck

import (
	"slices"
	"testing"
)

// TestInternalTypesFindsPlanted runs the check on a planted package whose
// exported API names internal types in each way a signature can, so that a
// check that finds nothing is seen to be able to find something.
func TestInternalTypesFindsPlanted(t *testing.T) {
	found, err := InternalTypes("testdata/leaky")
	if err != nil {
		t.Fatal(err)
	}
	const tr = "github.com/ringwatch/ringwatch/internal/abi.TransportName"
	const wk = "github.com/ringwatch/ringwatch/internal/abi.Header"
	want := []string{
		"Alias: " + wk,
		"Callback: param 1: " + wk,
		"Fine: result 1.W: " + wk,
		"New: param 1: " + tr,
		"Options.Source: result 1: " + tr,
		"Options.Transport: " + tr,
	}
	if !slices.Equal(found, want) {
		t.Errorf("found\n%q\nwant\n%q", found, want)
	}
}
