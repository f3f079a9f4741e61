package bench

import (
	"slices"
	"testing"
)

// TestScaleCPUsAreAllowedOnes picks the scale scenario's CPUs from the
// CPUs the process may run on, whatever their numbers: under taskset -c
// 2,3,5 the producers go from CPU 3 on and the consumers get CPU 2, never
// CPU 0 or 1.
func TestScaleCPUsAreAllowedOnes(t *testing.T) {
	for _, tc := range []struct {
		allowed       []int
		n             int
		producers     []int
		spareForReads []int
	}{
		{[]int{0, 1}, 1, []int{1}, []int{0}},
		{[]int{2, 3, 5}, 1, []int{3}, []int{2, 5}},
		{[]int{2, 3, 5}, 2, []int{3, 5}, []int{2}},
		// More producers than CPUs: they wrap around, none spare.
		{[]int{2, 3, 5}, 4, []int{3, 5, 2, 3}, nil},
		{[]int{7}, 2, []int{7, 7}, nil},
	} {
		got := producerCPUs(tc.allowed, tc.n)
		if !slices.Equal(got, tc.producers) {
			t.Errorf("producerCPUs(%v, %d) = %v, want %v", tc.allowed, tc.n, got, tc.producers)
		}
		if spare := spareCPUs(tc.allowed, got); !slices.Equal(spare, tc.spareForReads) {
			t.Errorf("spareCPUs(%v, %v) = %v, want %v", tc.allowed, got, spare, tc.spareForReads)
		}
	}
}
