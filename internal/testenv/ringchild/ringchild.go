package ringchild

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/userring"
)

// childEnv makes the test binary, run again by Start, be the child.
const childEnv = "RINGWATCH_RINGCHILD"

// The rings the children make.
const (
	// RingName is the kernel-to-user ring's map name; ProgName its writer.
	RingName = "rc_test_ring"
	ProgName = "rc_test_write"
	// RingSize is the data size of the kernel-to-user ring.
	RingSize = 64 << 10
	// PayloadSize is what the writer program writes per record: 20 bytes,
	// so a record is 8 bytes of header and 20 of payload, padded to 32.
	PayloadSize = 20
	// RecordBytes is what one record of either child takes in its ring:
	// round_up(8+20, 8) for the ring buffer's, round_up(8+24, 8) for the
	// user ring's data message (kernel/bpf/ringbuf.c, BPF_RINGBUF_HDR_SZ
	// and round_up(len + BPF_RINGBUF_HDR_SZ, 8)).
	RecordBytes = 32
	// UserRingSize is the data size of the user ring.
	UserRingSize = 64 << 10

	// BurstRingName is the BurstRing child's ring, BurstProgName its
	// writer, BurstRingSize its data size.
	BurstRingName = "rc_burst_ring"
	BurstProgName = "rc_burst_write"
	BurstRingSize = 1 << 20
	// BurstPayload is what the burst writer writes per run: one record
	// of BurstRecordBytes in the ring, round_up(8+16376, 8) = 16 KiB.
	BurstPayload     = 16<<10 - 8
	BurstRecordBytes = 16 << 10
)

// Kind chooses the child's ring.
type Kind string

const (
	// Ring: a BPF_MAP_TYPE_RINGBUF named RingName and a socket filter
	// program ProgName that writes one PayloadSize record per run.
	Ring Kind = "ringbuf"
	// UserRing: ringwatch's control object loaded on its own: its
	// BPF_MAP_TYPE_USER_RINGBUF (map user_ring) that the child writes data
	// messages into, and the program that drains them.
	UserRing Kind = "user_ringbuf"
	// BurstRing: a BPF_MAP_TYPE_RINGBUF named BurstRingName and a socket
	// filter program BurstProgName that writes one record of
	// BurstRecordBytes per run, in one step of the producer position: a
	// burst that a reader of the positions sees whole or not at all.
	BurstRing Kind = "burst_ringbuf"
	// PerfArray: a BPF_MAP_TYPE_PERF_EVENT_ARRAY named PerfName with a
	// slot per possible CPU, and no program; its buffers are not opened.
	PerfArray Kind = "perf_event_array"
)

// PerfName is the PerfArray child's map name.
const PerfName = "rc_test_perf"

// Main runs the tests, or is the child when the test binary was started as
// one.
func Main(m *testing.M) {
	if kind := os.Getenv(childEnv); kind != "" {
		if err := serve(Kind(kind), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "ring child: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testenv.Main(m)
}

// Child is a running child process.
type Child struct {
	Pid     int
	MapID   ebpf.MapID
	ProgID  ebpf.ProgramID // the writer (Ring) or the drain (UserRing)
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	exited  bool
	waitErr error
}

// Start starts a child with a ring of kind; it is stopped when t ends.
func Start(t testing.TB, kind Kind) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(kind))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ring child: %v", err)
	}
	c := &Child{Pid: cmd.Process.Pid, cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() {
		if err := c.exit(); err != nil {
			t.Errorf("ring child: %v", err)
		}
	})
	var mapID, progID uint32
	line, err := c.out.ReadString('\n')
	if _, serr := fmt.Sscanf(line, "ready %d %d\n", &mapID, &progID); err != nil || serr != nil {
		t.Fatalf("ring child said %q (%v)", line, err)
	}
	c.MapID, c.ProgID = ebpf.MapID(mapID), ebpf.ProgramID(progID)
	return c
}

// Comm is what /proc/PID/comm says for the child: the test binary's name,
// cut to 15 bytes.
func (c *Child) Comm() string {
	name := c.cmd.Path[strings.LastIndexByte(c.cmd.Path, '/')+1:]
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// Do sends one command and returns the child's answer after "ok":
//
//	write N      write N records (Ring: run the program N times; UserRing: N data messages)
//	read         Ring: consume everything pending; answers the record count
//	drain        UserRing: run the drain program once; answers the message count
//	load         Ring: write a record every millisecond and read every 5ms, in the background
//	stop-reading Ring: the background writing goes on, the reading stops
//	bursts D     Ring, BurstRing: write one record every D (a duration) and read it, in the
//	             background, so that the ring never fills
func (c *Child) Do(t testing.TB, command string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, command); err != nil {
		t.Fatalf("command ring child: %v", err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok") {
		t.Fatalf("ring child answered %q to %q (%v)", line, command, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ok"))
}

// Exit closes the child's stdin, which makes it exit, and waits for it.
func (c *Child) Exit(t testing.TB) {
	t.Helper()
	if err := c.exit(); err != nil {
		t.Fatalf("ring child: %v", err)
	}
}

func (c *Child) exit() error {
	if !c.exited {
		c.exited = true
		c.in.Close()
		c.waitErr = c.cmd.Wait()
	}
	return c.waitErr
}

// serve is the child's side.
func serve(kind Kind, stdin io.Reader, stdout io.Writer) error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	var r ring
	var err error
	switch kind {
	case Ring:
		r, err = newKernelRing()
	case BurstRing:
		r, err = newBurstRing()
	case UserRing:
		r, err = newUserRing()
	case PerfArray:
		r, err = newPerfArray()
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		return err
	}
	defer r.close()
	mapID, progID := r.ids()
	fmt.Fprintf(stdout, "ready %d %d\n", mapID, progID)
	in := bufio.NewScanner(stdin)
	for in.Scan() {
		verb, arg, _ := strings.Cut(in.Text(), " ")
		answer, err := r.do(verb, arg)
		if err != nil {
			return fmt.Errorf("%s: %w", in.Text(), err)
		}
		fmt.Fprintf(stdout, "ok %s\n", answer)
	}
	return nil
}

type ring interface {
	ids() (ebpf.MapID, ebpf.ProgramID)
	do(verb, arg string) (string, error)
	close()
}

// kernelRing is the Ring child: its map, its writer, and a consumer.
type kernelRing struct {
	m    *ebpf.Map
	prog *ebpf.Program
	cons *consumer.Consumer

	mu       sync.Mutex // around prog runs and drains
	stopLoad context.CancelFunc
	reading  chan bool
	wg       sync.WaitGroup
}

func newKernelRing() (*kernelRing, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: RingName, Type: ebpf.RingBuf, MaxEntries: RingSize})
	if err != nil {
		return nil, fmt.Errorf("create ring buffer: %w", err)
	}
	// Six words of stack (StoreImm takes at most a word), 20 bytes of
	// which go out per run as one record with
	// bpf_ringbuf_output(&ring, fp-24, 20, 0).
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: ProgName, Type: ebpf.SocketFilter, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -8, 0x04030201, asm.Word),
			asm.StoreImm(asm.RFP, -12, 0x04030201, asm.Word),
			asm.StoreImm(asm.RFP, -16, 0x04030201, asm.Word),
			asm.StoreImm(asm.RFP, -20, 0x04030201, asm.Word),
			asm.StoreImm(asm.RFP, -24, 0x04030201, asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -24),
			asm.Mov.Imm(asm.R3, PayloadSize),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load writer: %w", err)
	}
	cons, err := consumer.Open(consumer.RingBuffer(RingName, m))
	if err != nil {
		prog.Close()
		m.Close()
		return nil, err
	}
	return &kernelRing{m: m, prog: prog, cons: cons}, nil
}

func (k *kernelRing) ids() (ebpf.MapID, ebpf.ProgramID) {
	mi, _ := k.m.Info()
	pi, _ := k.prog.Info()
	mid, _ := mi.ID()
	pid, _ := pi.ID()
	return mid, pid
}

// write runs the writer n times: a socket filter's test run needs a packet
// of at least an Ethernet header (net/bpf/test_run.c). One run per call:
// a signal during a repeated run ends it early with EINTR, and
// cilium/ebpf then runs all the repetitions again, so the ring would get
// more records than asked for (1,006 for 1,005 in a CI run).
func (k *kernelRing) write(n int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	packet := make([]byte, 14)
	for range n {
		if _, err := k.prog.Run(&ebpf.RunOptions{Data: packet, Repeat: 1}); err != nil {
			return err
		}
	}
	return nil
}

func (k *kernelRing) read() (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cons.Drain(func(consumer.Batch) {})
}

func (k *kernelRing) do(verb, arg string) (string, error) {
	switch verb {
	case "write":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return "", err
		}
		return "", k.write(n)
	case "read":
		n, err := k.read()
		return strconv.Itoa(n), err
	case "load":
		ctx, cancel := context.WithCancel(context.Background())
		k.stopLoad = cancel
		k.reading = make(chan bool, 1)
		k.wg.Add(1)
		go k.load(ctx)
		return "", nil
	case "stop-reading":
		k.reading <- false
		return "", nil
	case "bursts":
		every, err := time.ParseDuration(arg)
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithCancel(context.Background())
		k.stopLoad = cancel
		k.wg.Add(1)
		go k.bursts(ctx, every)
		return "", nil
	}
	return "", fmt.Errorf("unknown command")
}

// load writes a record every millisecond, and reads every 5 ms until told
// to stop reading. A full ring refuses records; the writer keeps trying.
func (k *kernelRing) load(ctx context.Context) {
	defer k.wg.Done()
	write := time.NewTicker(time.Millisecond)
	defer write.Stop()
	read := time.NewTicker(5 * time.Millisecond)
	defer read.Stop()
	reading := true
	for {
		select {
		case <-ctx.Done():
			return
		case reading = <-k.reading:
		case <-write.C:
			_ = k.write(1)
		case <-read.C:
			if reading {
				_, _ = k.read()
			}
		}
	}
}

// bursts writes one record every period and reads it, until ctx is done.
func (k *kernelRing) bursts(ctx context.Context, every time.Duration) {
	defer k.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = k.write(1)
			_, _ = k.read()
		}
	}
}

func (k *kernelRing) close() {
	if k.stopLoad != nil {
		k.stopLoad()
		k.wg.Wait()
	}
	k.cons.Close()
	k.prog.Close()
	k.m.Close()
}

// newBurstRing is the BurstRing child: its ring, a one-entry array whose
// value is the payload, and a writer that outputs the whole value as one
// record with bpf_ringbuf_output(&ring, value, BurstPayload, 0).
func newBurstRing() (*kernelRing, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: BurstRingName, Type: ebpf.RingBuf, MaxEntries: BurstRingSize})
	if err != nil {
		return nil, fmt.Errorf("create ring buffer: %w", err)
	}
	payload, err := ebpf.NewMap(&ebpf.MapSpec{Name: "rc_burst_data", Type: ebpf.Array, KeySize: 4, ValueSize: BurstPayload, MaxEntries: 1})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("create payload array: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: BurstProgName, Type: ebpf.SocketFilter, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word), // key 0
			asm.LoadMapPtr(asm.R1, payload.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.R0),
			asm.Mov.Imm(asm.R3, BurstPayload),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	})
	// The program holds the array; the child needs no descriptor of it.
	payload.Close()
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load burst writer: %w", err)
	}
	cons, err := consumer.Open(consumer.RingBuffer(BurstRingName, m))
	if err != nil {
		prog.Close()
		m.Close()
		return nil, err
	}
	return &kernelRing{m: m, prog: prog, cons: cons}, nil
}

// userRing is the UserRing child: ringwatch's control object (bpf/control.c)
// loaded on its own, and a writer of its user ring.
type userRing struct {
	coll  *ebpf.Collection
	drain *ebpf.Program
	w     *userring.Writer
	seq   uint64
}

func newUserRing() (*userRing, error) {
	spec, err := abi.LoadControl()
	if err != nil {
		return nil, err
	}
	spec.Maps[abi.ControlMapUserRing].MaxEntries = UserRingSize
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load the control object: %w", err)
	}
	w, err := userring.Open(coll.Maps[abi.ControlMapUserRing])
	if err != nil {
		coll.Close()
		return nil, err
	}
	return &userRing{coll: coll, drain: coll.Programs[abi.ControlProgDrain], w: w}, nil
}

func (u *userRing) ids() (ebpf.MapID, ebpf.ProgramID) {
	mi, _ := u.coll.Maps[abi.ControlMapUserRing].Info()
	pi, _ := u.drain.Info()
	mid, _ := mi.ID()
	pid, _ := pi.ID()
	return mid, pid
}

func (u *userRing) do(verb, arg string) (string, error) {
	switch verb {
	case "write":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return "", err
		}
		for range n {
			u.seq++
			if err := u.w.Write(control.AppendData(nil, u.seq, u.seq)); err != nil {
				return "", err
			}
		}
		return "", nil
	case "drain":
		// The drain program returns how many messages it took (or a
		// negative errno); one run takes what a 64 KiB ring holds.
		n, err := u.drain.Run(&ebpf.RunOptions{})
		if err == nil && int32(n) < 0 {
			err = fmt.Errorf("drain returned %d", int32(n))
		}
		return strconv.Itoa(int(int32(n))), err
	}
	return "", fmt.Errorf("unknown command")
}

func (u *userRing) close() {
	u.w.Close()
	u.coll.Close()
}

// perfArray is the PerfArray child: the map alone.
type perfArray struct{ m *ebpf.Map }

func newPerfArray() (*perfArray, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: PerfName, Type: ebpf.PerfEventArray})
	if err != nil {
		return nil, fmt.Errorf("create perf event array: %w", err)
	}
	return &perfArray{m: m}, nil
}

func (p *perfArray) ids() (ebpf.MapID, ebpf.ProgramID) {
	mi, _ := p.m.Info()
	mid, _ := mi.ID()
	return mid, 0
}

func (p *perfArray) do(verb, arg string) (string, error) { return "", fmt.Errorf("unknown command") }

func (p *perfArray) close() { p.m.Close() }
