// Package cli is ringwatch's command line without its commands: a
// [FlagSet] whose values refuse a bad one as the command line is read, in
// one line that names the flag, quotes what was given and says what is
// valid, and its help; and readers of what a user types into a flag:
// sizes, comma-separated lists, process ids, socket paths, listen
// addresses. The command defines its flags with them.
//
// Only the command imports it. The libraries take typed values and refuse
// a bad one with an error that names their own option, never a flag (see
// abi.OptionError), and [Reword] gives it the command's flag names, so the
// command alone decides what its flags are called. This package may name
// flags. [ParseRingSize], [SplitList], [ParsePIDs] and [CheckSocketPath]
// refuse with errors that wrap abi.ErrInvalidOption.
package cli
