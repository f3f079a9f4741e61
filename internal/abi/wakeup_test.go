package abi_test

import (
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// TestWakeupModesCoverTheConsumers: every wakeup mode pkg/consumer names
// has its own transport_config.wakeup for the producers, and no other
// name has one.
func TestWakeupModesCoverTheConsumers(t *testing.T) {
	seen := map[abi.WakeupMode]consumer.Wakeup{}
	for _, w := range append(consumer.Wakeups(), consumer.WakeupKernel) {
		m, ok := abi.WakeupModeOf(w)
		if !ok {
			t.Fatalf("wakeup mode %q has no transport_config.wakeup", w)
		}
		if other, dup := seen[m]; dup {
			t.Fatalf("%q and %q are both wakeup_mode %d", w, other, m)
		}
		seen[m] = w
	}
	if _, ok := abi.WakeupModeOf("sometimes"); ok {
		t.Fatal(`"sometimes" is a wakeup mode`)
	}
}
