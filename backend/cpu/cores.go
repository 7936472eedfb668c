package cpu

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// PhysicalCores is the number of physical cores this process may run on:
// distinct (package, core) pairs among the usable logical CPUs, from Linux
// sysfs. Hyper-threads share a core's vector units and memory bandwidth,
// so the kernels gain nothing from them. Elsewhere, or when sysfs is not
// readable, it is runtime.NumCPU().
func PhysicalCores() int {
	n := runtime.NumCPU()
	dirs, err := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/topology")
	if err != nil || len(dirs) == 0 {
		return n
	}
	cores := map[string]bool{}
	for _, d := range dirs {
		pkg, err1 := os.ReadFile(filepath.Join(d, "physical_package_id"))
		core, err2 := os.ReadFile(filepath.Join(d, "core_id"))
		if err1 != nil || err2 != nil {
			return n
		}
		cores[strings.TrimSpace(string(pkg))+"/"+strings.TrimSpace(string(core))] = true
	}
	// Logical CPUs this process may not use (cgroup or affinity limits) make
	// NumCPU the tighter bound; the core count bounds it otherwise.
	return max(1, min(n, len(cores)))
}
