package testbpf

import "github.com/cilium/ebpf"

// Load returns the embedded object of bpf/testfill.c: fill_<transport> and
// hold_<transport> for the ring buffer transports, floor_sys_enter (the
// producers' floor, with its own maps), the maps of
// bpf/transport.h they write through, and hold_control. Load it with the
// transport's maps replaced by the loaded producers' (MapReplacements), so
// that the fillers write into the rings a consumer reads and wake it as the
// producers do. Each call returns a fresh copy.
func Load() (*ebpf.CollectionSpec, error) { return loadTestfill() }

// The fillers' contexts and state: see bpf/testfill.h.
type (
	// FillArgs is fill_<transport>'s context.
	FillArgs = testfillFillArgs
	// HoldArgs is hold_<transport>'s context.
	HoldArgs = testfillHoldArgs
	// HoldState is hold_control's one value.
	HoldState = testfillHoldState
)

// MapHoldControl is where hold_<transport> and the test meet.
const MapHoldControl = testfillMapHoldControl

// The producers' floor (bpf/testfill.c, floor_sys_enter): the program, the
// ring it writes into and the hash of the processes it records.
const (
	ProgramFloor   = testfillProgFloorSysEnter
	MapFloorEvents = testfillMapFloorEvents
	MapFloorPIDs   = testfillMapFloorPids
)
