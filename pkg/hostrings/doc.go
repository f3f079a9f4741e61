// Package hostrings is the host ring census: every BPF ring buffer, user
// ring buffer and perf event array on the machine, whoever loaded it, with
// the positions of the two ring kinds read live, the programs that use each
// and the processes that hold it (/proc/PID/fdinfo). A [Census] walks the
// map IDs (BPF_MAP_GET_NEXT_ID), opens each ring with BPF_F_RDONLY and maps
// only its position pages, with PROT_READ, so it cannot disturb another
// process's ring. Walking map IDs needs CAP_SYS_ADMIN; without it [Open]
// returns an error wrapping [ErrPermission]. Perf event arrays come without
// positions: those live in each owner's perf mmaps. A ring buffer created
// with BPF_F_RB_OVERWRITE (Linux 6.19) is known by its map flags, and its
// overwrite position is read beside the other two (Ring.Overwrite).
//
// [Peaks] and [Advise] are the sizing model, on plain samples: the span
// with the highest producer rate, how long the ring lasts at it with its
// consumer stopped, and the smallest ring that holds a given pause.
//
// Stable (the API promised): everything exported; Ring, Advice and Options
// may gain fields. Not stable: the default periods and windows, and which
// rings count as Ours (ringwatch's own).
package hostrings
