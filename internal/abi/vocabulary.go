package abi

import "unsafe"

// Transport names a way records travel from the kernel to user space:
// --transport's values. pkg/transport has one type for each.
type Transport string

// The transports, default first in [Transports].
const (
	// Ringbuf is one BPF_MAP_TYPE_RINGBUF shared by every CPU.
	Ringbuf Transport = "ringbuf"
	// PercpuRingbuf is one BPF_MAP_TYPE_RINGBUF per CPU or group of CPUs.
	PercpuRingbuf Transport = "percpu-ringbuf"
	// Perfbuf is a BPF_MAP_TYPE_PERF_EVENT_ARRAY: one perf buffer per CPU.
	Perfbuf Transport = "perfbuf"
	// SPSC is a single-producer single-consumer queue per CPU in
	// BPF_F_MMAPABLE arrays, with a ring buffer as the doorbell.
	SPSC Transport = "spsc"
)

// Transports lists every transport, default first.
func Transports() []Transport { return []Transport{Ringbuf, PercpuRingbuf, Perfbuf, SPSC} }

// Wakeup says when the producers wake a sleeping consumer: --wakeup's
// values, and the producers' transport_config.wakeup.
type Wakeup string

const (
	// WakeupAdaptive: producers submit without waking anyone, and ring the
	// doorbell only when the consumer has said it sleeps. After records
	// have flowed, the consumer sleeps lazily: woken when the watermark of
	// pending data is reached, or by itself after a bounded delay. After
	// a lazy sleep that found nothing it sleeps deeply: woken by the next
	// record. A busy consumer costs the producers no wakeups at all.
	WakeupAdaptive Wakeup = "adaptive"
	// WakeupEvery: every record wakes the consumer.
	WakeupEvery Wakeup = "every"
	// WakeupBusy: nothing wakes the consumer; it polls the rings without
	// sleeping, burning a CPU for the lowest latency.
	WakeupBusy Wakeup = "busy"
	// WakeupKernel: ring buffers submit with flags 0, so the kernel wakes
	// the consumer when a commit finds it caught up: the rule libbpf's and
	// cilium/ebpf's readers expect, which `ringwatch bench` gives its peers.
	// A consumer reads it as it reads WakeupEvery: no handshake.
	WakeupKernel Wakeup = "kernel"
)

// Wakeups lists the wakeup modes a user chooses from, default first.
// WakeupKernel is for the peers of `ringwatch bench` only.
func Wakeups() []Wakeup { return []Wakeup{WakeupAdaptive, WakeupEvery, WakeupBusy} }

var wakeupModes = map[Wakeup]WakeupMode{
	WakeupAdaptive: ringwatchWakeupModeWAKEUP_ADAPTIVE,
	WakeupEvery:    ringwatchWakeupModeWAKEUP_EVERY,
	WakeupBusy:     ringwatchWakeupModeWAKEUP_BUSY,
	WakeupKernel:   ringwatchWakeupModeWAKEUP_KERNEL,
}

// Mode is w as the producers take it in transport_config.wakeup, and false
// for a name that is no mode.
func (w Wakeup) Mode() (WakeupMode, bool) {
	m, ok := wakeupModes[w]
	return m, ok
}

type (
	// WakeupMode is enum wakeup_mode.
	WakeupMode = ringwatchWakeupMode
	// TransportConfig is the producers' transport settings: struct
	// transport_config.
	TransportConfig = ringwatchTransportConfig
	// SPSCQueue is one SPSC queue's indices: struct spsc_queue.
	SPSCQueue = ringwatchSpscQueue
	// SPSCSlot is the start of one SPSC slot: struct spsc_slot.
	SPSCSlot = ringwatchSpscSlot
	// WakeState is the consumer's side of the sleep handshake: struct
	// wake_state.
	WakeState = ringwatchWakeState
	// SleepState is wake_state.consumer_sleeping: enum sleep_state.
	SleepState = ringwatchSleepState
)

// The consumer's sleep states in WakeState.ConsumerSleeping.
const (
	SleepAwake = ringwatchSleepStateSLEEP_AWAKE
	SleepDeep  = ringwatchSleepStateSLEEP_DEEP
	SleepLazy  = ringwatchSleepStateSLEEP_LAZY
)

// Offsets and sizes of the layouts the consumer maps, from the generated
// types.
const (
	SPSCQueueSize       = int(unsafe.Sizeof(SPSCQueue{}))
	SPSCHeadOffset      = int(unsafe.Offsetof(SPSCQueue{}.Head))
	SPSCTailOffset      = int(unsafe.Offsetof(SPSCQueue{}.Tail))
	SPSCSlotHeader      = int(unsafe.Offsetof(SPSCSlot{}.Data))
	WakeStateSize       = int(unsafe.Sizeof(WakeState{}))
	WakeSleepingOffset  = int(unsafe.Offsetof(WakeState{}.ConsumerSleeping))
	WakeWatermarkOffset = int(unsafe.Offsetof(WakeState{}.Watermark))
)

// PerfScratchSize bounds a perfbuf record: the programs build each record in
// a per-CPU scratch buffer of this size (struct perf_scratch.data).
const PerfScratchSize = int(unsafe.Sizeof(ringwatchPerfScratch{}.Data))
