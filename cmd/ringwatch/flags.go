package main

// Every command defines its flags with a cli.FlagSet, whose values check
// what they are given as the command line is read, and refuse a bad value
// in one line that names the flag. Checks that take several flags
// together, or the names a list may hold, come after parsing, in each
// command's parse function, from the packages that define the options
// (internal/abi, internal/transport, internal/loader). Either way the
// command exits exitUsage before it loads anything.

// flagName is flagOf as a function, an option it lacks keeping its name.
func flagName(option string) string {
	if flag, ok := flagOf[option]; ok {
		return flag
	}
	return option
}

// flagOf names, for each option a library refuses by its own name (an
// abi.OptionError's), the flag that sets it. Messages from the libraries
// go through cli.Reword with it before they are printed.
var flagOf = map[string]string{
	"Consumers":   "--consumers",
	"CPUsPerRing": "--cpus-per-ring",
	"Transport":   "--transport",
	"Sources":     "--source",
	// The control socket a run listens on, and the one ctl sends to.
	"control socket":     "--ctl.socket",
	"web listen address": "--web.listen-address",
	"web config file":    "--web.config.file",
	"systemd socket":     "--web.systemd-socket",
	"host rings off":     "--host-rings=false",
	"recorder":           "--recorder",
	// Where a run's announcement sends its reader.
	"control client help": "'ringwatch ctl --help'",
	// ringwatch rings and top.
	"pause":  "--pause",
	"once":   "--once",
	"socket": "--socket",
}
