package consumer

// Wakeup says when the producers wake a sleeping consumer; the producers
// are loaded with their side of it, [Config.Wakeup] says the consumer's.
type Wakeup string

// The wakeup modes.
const (
	// WakeupAdaptive: producers submit without waking anyone, and ring the
	// doorbell only when the consumer has said it sleeps. While records
	// flow the consumer sleeps lazily: woken when the watermark it set is
	// reached, or by itself within MaxDelay. Once they stop it sleeps
	// deeply: woken by the next record. A consumer that is reading costs
	// the producers no wakeups at all.
	WakeupAdaptive Wakeup = "adaptive"
	// WakeupEvery: every record wakes the consumer.
	WakeupEvery Wakeup = "every"
	// WakeupBusy: nothing wakes the consumer; it polls the rings without
	// sleeping, burning a CPU for the lowest latency.
	WakeupBusy Wakeup = "busy"
	// WakeupKernel: ring buffers submit with flags 0, so the kernel wakes
	// the consumer when a commit finds it caught up, the rule libbpf's and
	// cilium/ebpf's readers expect. A consumer reads it as it reads
	// WakeupEvery: no handshake.
	WakeupKernel Wakeup = "kernel"
)

// Wakeups lists the wakeup modes a user chooses from, default first.
// WakeupKernel is left out: it is for comparing with other readers.
func Wakeups() []Wakeup { return []Wakeup{WakeupAdaptive, WakeupEvery, WakeupBusy} }
