package testenv

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// RequireSyscallProgs stops t unless this process can do what RequireBPF
// checks and also load BPF_PROG_TYPE_SYSCALL programs (Linux 5.14), which
// the bench producer, the test fillers and the control program's doorbell
// are, and run them with BPF_PROG_TEST_RUN.
func RequireSyscallProgs(t testing.TB) {
	t.Helper()
	RequireBPF(t)
	if err := features.HaveProgramType(ebpf.Syscall); err != nil {
		Unavailable(t, fmt.Sprintf("kernel lacks BPF_PROG_TYPE_SYSCALL programs (Linux 5.14): %v", err))
	}
}

// haveAtomics loads a program that does a cmpxchg and a fetch-and-add on
// its stack: an older verifier refuses the opcodes. Probed once.
var haveAtomics = sync.OnceValue(func() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0), // cmpxchg compares with R0
			asm.Mov.Imm(asm.R2, 1),
			asm.CmpXchg.Mem(asm.RFP, asm.R2, asm.DWord, -8),
			asm.FetchAdd.Mem(asm.RFP, asm.R2, asm.DWord, -8),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		return err
	}
	return prog.Close()
})
