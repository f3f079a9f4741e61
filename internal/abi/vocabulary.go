package abi

import "unsafe"

// TransportName names a way records travel from the kernel to user space:
// --transport's values. internal/transport has one type for each.
type TransportName string

// The transports, default first in [Transports].
const (
	// Ringbuf is one BPF_MAP_TYPE_RINGBUF shared by every CPU.
	Ringbuf TransportName = "ringbuf"
	// PercpuRingbuf is one BPF_MAP_TYPE_RINGBUF per CPU or group of CPUs.
	PercpuRingbuf TransportName = "percpu-ringbuf"
	// Perfbuf is a BPF_MAP_TYPE_PERF_EVENT_ARRAY: one perf buffer per CPU.
	Perfbuf TransportName = "perfbuf"
	// SPSC is a single-producer single-consumer queue per CPU in
	// BPF_F_MMAPABLE arrays, with a ring buffer as the doorbell.
	SPSC TransportName = "spsc"
)

// Transports lists every transport, default first.
func Transports() []TransportName { return []TransportName{Ringbuf, PercpuRingbuf, Perfbuf, SPSC} }

// wakeupModes are the producers' transport_config.wakeup for each of
// pkg/consumer's wakeup modes, by name: abi sits below the consumer, so it
// takes the name (TestWakeupModesCoverTheConsumers holds the two lists
// together).
var wakeupModes = map[string]WakeupMode{
	"adaptive": ringwatchWakeupModeWAKEUP_ADAPTIVE,
	"every":    ringwatchWakeupModeWAKEUP_EVERY,
	"busy":     ringwatchWakeupModeWAKEUP_BUSY,
	"kernel":   ringwatchWakeupModeWAKEUP_KERNEL,
}

// WakeupModeOf is the wakeup mode named name (a consumer.Wakeup) as the
// producers take it in transport_config.wakeup, and false for a name that
// is no mode.
func WakeupModeOf[T ~string](name T) (WakeupMode, bool) {
	m, ok := wakeupModes[string(name)]
	return m, ok
}

type (
	// WakeupMode is enum wakeup_mode.
	WakeupMode = ringwatchWakeupMode
	// TransportConfig is the producers' transport settings: struct
	// transport_config.
	TransportConfig = ringwatchTransportConfig
	// RecorderCounters is one CPU's recorder books: struct
	// recorder_counters.
	RecorderCounters = ringwatchRecorderCounters
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
