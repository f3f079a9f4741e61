// Package cpus owns what ringwatch asks the kernel about CPUs and threads:
// the CPUs this process may run on (its affinity) and those online, the
// kernel's CPU list format ("0-3,8") that users give and sysfs writes,
// pinning a thread to one CPU, and a thread's CPU time. Its messages about
// CPUs a user gave wrap abi.ErrInvalidOption.
package cpus
