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

// The flight recorder's test producer (bpf/testfill.c, fill_overwrite): it
// writes OverwriteRecords into MapOverwriteEvents, a ring created with
// BPF_F_RB_OVERWRITE (Linux 6.19), and leaves in its OverwriteArgs what
// bpf_ringbuf_query(BPF_RB_OVERWRITE_POS) said after its run and the
// reserves that failed.
type (
	// OverwriteArgs is fill_overwrite's context.
	OverwriteArgs = testfillOverwriteArgs
	// OverwriteRecord is what fill_overwrite writes.
	OverwriteRecord = testfillOverwriteRecord
)

// OverwriteSpec is fill_overwrite alone with the one map it uses,
// MapOverwriteEvents, of size bytes (a power-of-two multiple of the page
// size): what a test loads to write an overwrite-mode ring.
func OverwriteSpec(size uint32) (*ebpf.CollectionSpec, error) {
	spec, err := loadTestfill()
	if err != nil {
		return nil, err
	}
	prog := spec.Programs[ProgramFillOverwrite]
	spec.Programs = map[string]*ebpf.ProgramSpec{ProgramFillOverwrite: prog}
	used := map[string]bool{}
	for _, ins := range prog.Instructions {
		if ref := ins.Reference(); ref != "" {
			used[ref] = true
		}
	}
	for name := range spec.Maps {
		if !used[name] {
			delete(spec.Maps, name)
		}
	}
	spec.Maps[MapOverwriteEvents].MaxEntries = size
	return spec, nil
}

const (
	ProgramFillOverwrite = testfillProgFillOverwrite
	MapOverwriteEvents   = testfillMapOverwriteEvents
	// OverwriteCheckMul is OVERWRITE_CHECK_MUL of bpf/testfill.h:
	// check[i] of a record is seq*OverwriteCheckMul + i.
	OverwriteCheckMul = 0x9e3779b97f4a7c15
)
