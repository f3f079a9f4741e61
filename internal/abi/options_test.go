package abi

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckRingSizeSuggestsTheNextPowerOfTwo(t *testing.T) {
	err := CheckRingSize(3 << 20)
	if err == nil || !strings.Contains(err.Error(), "try 4MiB") {
		t.Fatalf("CheckRingSize(3MiB) = %v, want a suggestion of 4MiB", err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int]string{
		4 << 20: "4MiB", 1 << 30: "1GiB", 256 << 10: "256KiB", 6000: "6000B", 1536: "1536B", 3 << 20: "3MiB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCheckRingSizeRefusesWhatTheKernelCannotTake(t *testing.T) {
	for _, size := range []int{MaxRingSize * 2, 64 << 30} {
		err := CheckRingSize(size)
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "choose 2GiB or less") {
			t.Errorf("CheckRingSize(%s) = %v, want the 2GiB limit", FormatSize(size), err)
		}
	}
	if err := CheckRingSize(MaxRingSize); err != nil {
		t.Errorf("CheckRingSize(2GiB) = %v", err)
	}
}

func TestOptionErrorNamesOptionsAsItsReaderDoes(t *testing.T) {
	flags := func(option string) string { return "--" + strings.ToLower(option) }
	for _, tc := range []struct {
		err         *OptionError
		plain, text string
	}{
		{RefuseOption(ErrInvalidOption, "Consumers", -2, "{Consumers} %d: give 1 or more", -2),
			"Consumers -2: give 1 or more", "--consumers -2: give 1 or more"},
		{RefuseOption(ErrInvalidOption, "Rings", 2, "{Rings} %d applies only to {Transport} %s", 2, "percpu"),
			"Rings 2 applies only to Transport percpu", "--rings 2 applies only to --transport percpu"},
		// Braces in a value are the value's, not an option.
		{RefuseOption(ErrInvalidOption, "Socket", "/tmp/{Rings}}", "%q: choose another {Socket}", "/tmp/{Rings}}"),
			`"/tmp/{Rings}}": choose another Socket`, `"/tmp/{Rings}}": choose another --socket`},
		{RefuseOption(ErrInvalidOption, "Socket", "x", "{Socket} %v", errors.New("{odd")),
			"Socket {odd", "--socket {odd"},
	} {
		if got := tc.err.Error(); got != tc.plain {
			t.Errorf("Error() = %q, want %q", got, tc.plain)
		}
		if got := tc.err.Text(flags); got != tc.text {
			t.Errorf("Text(flags) = %q, want %q", got, tc.text)
		}
		if !errors.Is(tc.err, ErrInvalidOption) {
			t.Errorf("%v does not wrap ErrInvalidOption", tc.err)
		}
	}
	if err := RefuseOption(nil, "Socket", "x", "{Socket} x"); errors.Is(err, ErrInvalidOption) {
		t.Errorf("%v wraps ErrInvalidOption, though refused with no kind", err)
	}
}
