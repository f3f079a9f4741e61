package privilege

import (
	"slices"
	"strings"
	"testing"
)

func TestParseAndNames(t *testing.T) {
	s, err := Parse([]string{"CAP_BPF", "CAP_CHOWN", "CAP_PERFMON", "CAP_CHECKPOINT_RESTORE"})
	if err != nil {
		t.Fatal(err)
	}
	// Bits from include/uapi/linux/capability.h: CHOWN 0, PERFMON 38,
	// BPF 39, CHECKPOINT_RESTORE 40.
	if want := Set(1<<0 | 1<<38 | 1<<39 | 1<<40); s != want {
		t.Errorf("Parse = %#x, want %#x", uint64(s), uint64(want))
	}
	if got := s.String(); got != "CAP_CHOWN,CAP_PERFMON,CAP_BPF,CAP_CHECKPOINT_RESTORE" {
		t.Errorf("String = %q", got)
	}
	if got := Set(1 << 41).Names(); !slices.Equal(got, []string{"cap_41"}) {
		t.Errorf("an unnamed capability is %q", got)
	}
	if Set(0).String() != "none" {
		t.Errorf("the empty set is %q", Set(0).String())
	}
	if _, err := Parse([]string{"CAP_BPF", "bpf"}); err == nil || !strings.Contains(err.Error(), `"bpf"`) {
		t.Errorf("Parse of a wrong name: %v", err)
	}
	for i, name := range names {
		if got := MustParse([]string{name}); got != 1<<i {
			t.Errorf("%s is bit %#x, want bit %d", name, uint64(got), i)
		}
	}
}

func TestPhaseSets(t *testing.T) {
	load, run := MustParse(Load), MustParse(Run)
	if run&^load != 0 {
		t.Errorf("Run (%s) holds what Load (%s) does not: a process cannot gain it after loading", run, load)
	}
	if got := Missing(MustParse([]string{"CAP_BPF"}), Load); !slices.Equal(got, []string{"CAP_PERFMON", "CAP_DAC_READ_SEARCH"}) {
		t.Errorf("Missing = %q", got)
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tringwatch\nUid:\t65534\t65534\t65534\t65534\nCapInh:\t0000000000000000\nCapPrm:\t000000c000000004\n" +
		"CapEff:\t000000c000000004\nCapBnd:\t000001ffffffffff\nCapAmb:\t000000c000000004\nNoNewPrivs:\t1\n"
	sets, err := ParseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if got := sets["CapEff"].String(); got != "CAP_DAC_READ_SEARCH,CAP_PERFMON,CAP_BPF" {
		t.Errorf("CapEff = %s", got)
	}
	if sets["CapInh"] != 0 || sets["CapBnd"] != 1<<41-1 {
		t.Errorf("sets = %v", sets)
	}
	if _, err := ParseStatus([]byte("CapEff:\tzz\n")); err == nil {
		t.Error("a bad hex mask parsed")
	}
	if _, err := ParseStatus([]byte("CapEff:\t0\n")); err == nil || !strings.Contains(err.Error(), "CapInh") {
		t.Errorf("a status without CapInh: %v", err)
	}
}
