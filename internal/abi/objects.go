package abi

import "github.com/cilium/ebpf"

// LoadProducers returns the embedded object of bpf/ringwatch.c: every
// source's program for every transport, the bench producers, and the maps
// they use. Each call returns a fresh copy to size and prune.
func LoadProducers() (*ebpf.CollectionSpec, error) { return loadRingwatch() }

// LoadControl returns the embedded object of bpf/control.c: the programs
// that drain the user ring, and their maps.
func LoadControl() (*ebpf.CollectionSpec, error) { return loadControl() }

// The maps of the producers' object (bpf/ringwatch.c).
const (
	MapEvents            = ringwatchMapEvents        // ringbuf
	MapPercpuEvents      = ringwatchMapPercpuEvents  // percpu-ringbuf: an array of ring buffers
	MapPerfEvents        = ringwatchMapPerfEvents    // perfbuf
	MapSPSCQueues        = ringwatchMapSpscQueues    // spsc: the queues' indices
	MapSPSCSlots         = ringwatchMapSpscSlots     // spsc: the slots
	MapDoorbells         = ringwatchMapDoorbells     // the sleep handshake: a doorbell ring per consumer
	MapConsumerState     = ringwatchMapConsumerState // the sleep handshake: a wake_state per consumer
	MapTransportSettings = ringwatchMapTransportSettings
	MapCounters          = ringwatchMapCounters
	MapSourceConfigs     = ringwatchMapSourceConfigs
	MapSyscallConfig     = ringwatchMapSyscallConfig
	MapSyscallPids       = ringwatchMapSyscallPids
	MapBenchCounters     = ringwatchMapBenchCounters
	MapRecorder          = ringwatchMapRecorder      // the flight recorder: an overwrite-mode ring
	MapRecorderStats     = ringwatchMapRecorderStats // the flight recorder's per-CPU books
)

// The maps and programs of the control object (bpf/control.c). Its
// source_configs, syscall_config and syscall_pids are the producers' maps of
// the same names when it steers them.
const (
	ControlMapUserRing   = controlMapUserRing
	ControlMapReplies    = controlMapReplies
	ControlMapDrainStats = controlMapDrainStats
	ControlProgDrain     = controlProgDrainUserRing     // drains without waking anyone
	ControlProgDrainWake = controlProgDrainUserRingWake // wakes writers and reply readers
)
