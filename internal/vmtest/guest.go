package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The guest's console carries the kernel's messages and the tests' output
// together; the init script frames each step with marker lines that carry
// a nonce the host drew for this boot (on the kernel command line, which
// no test reads), so that no test output can pass for a marker:
//
//	@@vmtest NONCE begin kernel=RELEASE cpus=N
//	@@vmtest NONCE start STEP
//	... the step's output ...
//	@@vmtest NONCE end STEP rc=N
//	@@vmtest NONCE done
//
// A boot whose console never shows begin died before any test ran and may
// be retried; one that began and did not reach done failed.
const marker = "@@vmtest"

// initScript is the guest's /init: busybox's shell, which mounts what the
// tests need, runs each step with CI=1 as root, and powers the machine off.
// The kernel's own messages go to the same console at warning level and
// above (loglevel=4), so an oops or a BPF warning during a test shows
// beside the test that caused it.
func initScript(steps []step, env []string) string {
	var b strings.Builder
	b.WriteString(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
hostname vmtest
NONCE=$(sed -n 's/.*vmtest.nonce=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
echo "@@vmtest $NONCE begin kernel=$(uname -r) arch=$(uname -m) cpus=$(nproc)"
step() {
	id=$1 dir=$2 limit=$3
	shift 3
	echo "@@vmtest $NONCE start $id"
	start=$(cut -d' ' -f1 /proc/uptime)
	(cd "/src/$dir" && exec timeout "$limit" "$@") </dev/null 2>&1
	rc=$?
	echo "@@vmtest $NONCE end $id rc=$rc seconds=$(awk -v s="$start" '{print $1 - s}' /proc/uptime)"
}
`)
	for _, e := range env {
		fmt.Fprintf(&b, "export %s\n", e)
	}
	for _, s := range steps {
		fmt.Fprintf(&b, "step %s %s %d %s\n", s.id, s.dir, int(s.limit.Seconds()), shellJoin(s.argv))
	}
	b.WriteString(`echo "@@vmtest $NONCE done"
sync
poweroff -f
`)
	return b.String()
}

// shellJoin quotes argv for the shell.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// guestFiles are the files every guest gets besides the tests: busybox and
// its applets' links, the users the tests switch to, and init.
func guestFiles(busybox, init string) []cpioEntry {
	entries := []cpioEntry{
		{name: "bin/busybox", mode: 0o755, src: busybox},
		{name: "init", mode: 0o755, data: []byte(init)},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
		// Tests run /usr/bin/true and /bin/sh; busybox --install makes
		// the /bin links at boot.
		{name: "usr/bin", link: "/bin"},
		{name: "sbin", link: "/bin"},
		{name: "usr/sbin", link: "/bin"},
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "root", "src"} {
		entries = append(entries, cpioEntry{name: d, dir: true, mode: 0o755})
	}
	entries = append(entries, cpioEntry{name: "tmp", dir: true, mode: 0o1777})
	return entries
}

// packageFiles are a package directory's files, and its testdata, which
// its tests may read relative to their directory as go test runs them
// (pkg/consumer's tests read its Go sources).
func packageFiles(repo, dir string) ([]cpioEntry, error) {
	var entries []cpioEntry
	root := filepath.Join(repo, dir)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if path != root && !strings.HasPrefix(rel, "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		entries = append(entries, cpioEntry{name: filepath.Join("src", dir, rel), mode: uint32(info.Mode().Perm()), src: path})
		return nil
	})
	return entries, err
}
