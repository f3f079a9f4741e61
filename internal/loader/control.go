package loader

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// DefaultUserRingSize is the user ring's data size when
// ControlOptions.UserRingSize is 0: room for about 2,700 pings or 2,000
// control messages of ten pids between two drains.
const DefaultUserRingSize = 64 << 10

// maxDrainPerRun is how many samples one bpf_user_ringbuf_drain call takes
// at most (include/linux/bpf.h: BPF_MAX_USER_RINGBUF_SAMPLES).
const maxDrainPerRun = 128 * 1024

// ErrUserRingCorrupt is wrapped by [ControlProgram.Doorbell]'s error when the
// kernel refuses the user ring's contents: a writer broke the format, and
// the ring cannot be drained further.
var ErrUserRingCorrupt = errors.New("user ring corrupt")

// ControlOptions choose how the control object is loaded.
type ControlOptions struct {
	// UserRingSize is the user ring's data size in bytes: a power-of-two
	// multiple of the page size. 0 means DefaultUserRingSize.
	UserRingSize int
}

// ControlProgram is the loaded control program: a user ring that user space
// writes messages into, the BPF_PROG_TYPE_SYSCALL program that drains it
// (see bpf/control.c), and the replies ring it answers pings on. It is
// safe for concurrent use.
type ControlProgram struct {
	mu          sync.Mutex
	coll        *ebpf.Collection
	quiet, wake *ebpf.Program // the doorbell without and with wakeups
	userRing    *ebpf.Map
	replies     *ebpf.Map
	run         ebpf.RunOptions // reused: a syscall program here takes no input
}

// OpenControl loads the control program on its own, with maps of its own
// for the producers' settings: its messages then change nothing that runs.
// That is enough for pings and data, which is what `ringwatch ping` uses.
// To steer running producers, use [Producers.OpenControl].
func OpenControl(opts ControlOptions) (*ControlProgram, error) {
	return openControl(opts, nil)
}

// OpenControl loads the control program next to the producers, sharing
// their settings maps: its messages change what the producers emit, from
// the drain that reads them on. Close the Control before the Producers,
// since it keeps those maps alive.
func (p *Producers) OpenControl(opts ControlOptions) (*ControlProgram, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return nil, fmt.Errorf("open control: %w", os.ErrClosed)
	}
	shared := map[string]*ebpf.Map{
		abi.MapSourceConfigs: p.coll.Maps[abi.MapSourceConfigs],
		abi.MapSyscallPids:   p.coll.Maps[abi.MapSyscallPids],
		abi.MapSyscallConfig: p.coll.Maps[abi.MapSyscallConfig],
	}
	// The producers load only the maps their sources use: without the
	// syscalls source there is no pid filter to share, and the control
	// program's own copy changes nothing.
	for name, m := range shared {
		if m == nil {
			delete(shared, name)
		}
	}
	return openControl(opts, shared)
}

func openControl(opts ControlOptions, shared map[string]*ebpf.Map) (*ControlProgram, error) {
	size := opts.UserRingSize
	if size == 0 {
		size = DefaultUserRingSize
	}
	if err := abi.CheckRingSize(size); err != nil {
		return nil, fmt.Errorf("user ring: %w", err)
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := checkControlFeatures(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove the memlock limit for BPF maps: %w", err)
	}
	spec, err := abi.LoadControl()
	if err != nil {
		return nil, err
	}
	spec.Maps[abi.ControlMapUserRing].MaxEntries = uint32(size)
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: shared})
	var verifierErr *ebpf.VerifierError
	if errors.As(err, &verifierErr) {
		// The verifier's refusal is EACCES too, but no privilege would help.
		return nil, fmt.Errorf("load the control program: the kernel's verifier refused it: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("load the control program: %w", explainLoadError(err))
	}
	return &ControlProgram{
		coll:     coll,
		quiet:    coll.Programs[abi.ControlProgDrain],
		wake:     coll.Programs[abi.ControlProgDrainWake],
		userRing: coll.Maps[abi.ControlMapUserRing],
		replies:  coll.Maps[abi.ControlMapReplies],
	}, nil
}

// checkControlFeatures fails unless the kernel has what the control program
// needs: the user ring map type and syscall programs (Linux 6.1).
func checkControlFeatures() error {
	for _, check := range []struct {
		what string
		err  error
	}{
		{"BPF_MAP_TYPE_USER_RINGBUF", features.HaveMapType(ebpf.UserRingbuf)},
		{"BPF_PROG_TYPE_SYSCALL", features.HaveProgramType(ebpf.Syscall)},
	} {
		if errors.Is(check.err, ebpf.ErrNotSupported) {
			return problemf(ErrUnsupportedKernel, "this kernel lacks %s, which the user ring needs: run ringwatch on Linux 6.1 or later", check.what)
		}
		if check.err != nil {
			return fmt.Errorf("probe for %s: %w", check.what, explainLoadError(check.err))
		}
	}
	return nil
}

// ErrUnsupportedKernel means the kernel is too old for a feature.
var ErrUnsupportedKernel = errors.New("kernel too old")

// UserRing is the map user space writes messages into: a
// BPF_MAP_TYPE_USER_RINGBUF, for a [userring.Writer]. It stays valid until
// Close.
//
// [userring.Writer]: https://pkg.go.dev/github.com/ringwatch/ringwatch/pkg/userring#Writer
func (c *ControlProgram) UserRing() *ebpf.Map { return c.userRing }

// Replies is the BPF_MAP_TYPE_RINGBUF the control program answers pings
// on, one abi.Reply per ping. It stays valid until Close.
func (c *ControlProgram) Replies() *ebpf.Map { return c.replies }

// Doorbell runs the control program once, in this thread, through
// BPF_PROG_TEST_RUN: it drains every message in the user ring, in order,
// and returns how many it drained. When Doorbell returns, every message
// submitted before it was called has been acted on, and a ping's reply is
// in the replies ring.
//
// Doorbell wakes nobody: it is for a caller that writes the messages and
// reads the replies itself, between doorbells. A writer blocked in
// userring's ReserveWait, or a reader asleep on the replies ring, on
// another goroutine, needs [ControlProgram.DoorbellWake]. The wakeups are the
// kernel's irq_work interrupts, which cost about 10µs per drain on a VM.
//
// If another doorbell is draining at the same moment, the kernel lets only
// one drain run (bpf_user_ringbuf_drain returns -EBUSY); this one then
// tries again, so that messages written before the call are never left for
// a later one. An error wrapping [ErrUserRingCorrupt] means the kernel
// refused the ring's contents.
func (c *ControlProgram) Doorbell() (int, error) { return c.ring(c.quiet) }

// DoorbellWake is [ControlProgram.Doorbell] for a drainer that serves other
// goroutines: a drain that took anything wakes a writer waiting in epoll
// for room, and each ping reply wakes a reader waiting on the replies ring.
func (c *ControlProgram) DoorbellWake() (int, error) { return c.ring(c.wake) }

func (c *ControlProgram) ring(drain *ebpf.Program) (int, error) {
	total := 0
	for {
		ret, err := drain.Run(&c.run)
		if err != nil {
			return total, fmt.Errorf("run the user ring drain: %w", err)
		}
		switch n := int32(ret); {
		case n == -int32(unix.EBUSY):
			runtime.Gosched()
		case n < 0:
			return total, fmt.Errorf("drain the user ring: the kernel refused its contents (%w): %w",
				unix.Errno(-n), ErrUserRingCorrupt)
		default:
			total += int(n)
			if n < maxDrainPerRun {
				return total, nil
			}
		}
	}
}

// Stats reads the control program's counters from the kernel.
func (c *ControlProgram) Stats() (abi.DrainStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st abi.DrainStats
	if c.coll == nil {
		return st, fmt.Errorf("read user ring counters: %w", os.ErrClosed)
	}
	if err := c.coll.Maps[abi.ControlMapDrainStats].Lookup(uint32(0), &st); err != nil {
		return st, fmt.Errorf("read user ring counters: %w", err)
	}
	return st, nil
}

// Close frees the control program and its maps; maps shared with the
// producers stay theirs. Close is idempotent.
func (c *ControlProgram) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coll != nil {
		c.coll.Close()
		c.coll = nil
	}
	return nil
}
