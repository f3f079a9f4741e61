package transport

import (
	"errors"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name abi.Transport
		opts Options
		want string
	}{
		{"carrier-pigeon", Options{}, "choose from ringbuf, percpu-ringbuf, perfbuf, spsc"},
		{abi.Ringbuf, Options{CPUsPerRing: 2}, "applies only to --transport percpu-ringbuf"},
		{abi.PercpuRingbuf, Options{CPUsPerRing: -1}, "give 1 or more"},
		{abi.SPSC, Options{RingSize: 3 << 20}, "try 4MiB"},
	} {
		_, err := New(tc.name, tc.opts)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %+v) = %v, want ErrInvalidOption saying %q", tc.name, tc.opts, err, tc.want)
		}
	}
}
