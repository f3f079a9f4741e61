package transport

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name abi.TransportName
		opts Options
		want string
	}{
		{"carrier-pigeon", Options{}, "choose from ringbuf, percpu-ringbuf, perfbuf, spsc"},
		{abi.Ringbuf, Options{CPUsPerRing: 2}, "CPUsPerRing 2 applies only to Transport percpu-ringbuf"},
		{abi.PercpuRingbuf, Options{CPUsPerRing: -1}, "CPUsPerRing -1: give 1 or more"},
		{abi.PercpuRingbuf, Options{Consumers: -2}, "Consumers -2: give 1 or more, or 0 for one per 4 rings"},
		{abi.SPSC, Options{RingSize: 3 << 20}, "try 4MiB"},
	} {
		_, err := New(tc.name, tc.opts)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %+v) = %v, want ErrInvalidOption saying %q", tc.name, tc.opts, err, tc.want)
		}
	}
}

// TestCheckOptionsSaysWhichField holds CheckOptions to name the field it
// refuses, and its value, so that a command can name its flag instead; it
// names no flag itself.
func TestCheckOptionsSaysWhichField(t *testing.T) {
	for _, tc := range []struct {
		name          abi.TransportName
		opts          Options
		option, value string
		names         []string // the options its message names
	}{
		{abi.Ringbuf, Options{CPUsPerRing: 2}, "CPUsPerRing", "2", []string{"CPUsPerRing", "Transport"}},
		{abi.PercpuRingbuf, Options{CPUsPerRing: -1}, "CPUsPerRing", "-1", []string{"CPUsPerRing"}},
		{abi.Perfbuf, Options{Consumers: -2}, "Consumers", "-2", []string{"Consumers"}},
	} {
		var oe *abi.OptionError
		err := CheckOptions(tc.name, tc.opts)
		if !errors.As(err, &oe) || oe.Option != tc.option || oe.Value != tc.value {
			t.Errorf("CheckOptions(%q, %+v) = %#v, want an OptionError for %s %s", tc.name, tc.opts, err, tc.option, tc.value)
			continue
		}
		var named []string
		oe.Text(func(option string) string { named = append(named, option); return option })
		if !slices.Equal(named, tc.names) {
			t.Errorf("CheckOptions(%q, %+v) names %q, want %q", tc.name, tc.opts, named, tc.names)
		}
	}
}
