package privilege

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestNamesMatchUnix pins the hand-written table of capability names,
// which golang.org/x/sys/unix has only as numbers, against those numbers.
func TestNamesMatchUnix(t *testing.T) {
	if len(names) != unix.CAP_LAST_CAP+1 {
		t.Errorf("%d capability names, unix.CAP_LAST_CAP is %d", len(names), unix.CAP_LAST_CAP)
	}
	for name, n := range map[string]int{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
		"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
		"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SETFCAP": unix.CAP_SETFCAP,
		"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
		"CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF,
		"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
	} {
		if n >= len(names) || names[n] != name {
			t.Errorf("%s is capability %d in unix; the table says otherwise", name, n)
		}
	}
}
