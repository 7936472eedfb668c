// Package sysmem reports how much memory the system can give a model, and
// checks a model against it before loading.
package sysmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Available returns MemAvailable from /proc/meminfo in bytes (0 if unknown).
func Available() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// PathSize is the size of a file, or of the files directly in a directory.
func PathSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if !st.IsDir() {
		return st.Size()
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			n += info.Size()
		}
	}
	return n
}

// Check returns an error describing the problem when the model at path is
// larger than the memory available now (nil when it fits or is unknown).
func Check(path string) error {
	size, avail := PathSize(path), Available()
	if avail > 0 && size > avail {
		return fmt.Errorf("%s is %.2f GB but only %.2f GB of memory is available: weights will be paged in from disk on every token, "+
			"which is very slow (close other programs or use a smaller model)", path, float64(size)/1e9, float64(avail)/1e9)
	}
	return nil
}

// Usage is this process's memory use from /proc/self/status, in bytes
// (zeros where unknown): resident anonymous memory (heap, stacks), resident
// file-backed pages (memory maps), and the peak resident set size.
type Usage struct {
	RSSAnon, RSSFile, PeakRSS int64
}

// Self reads the process's current memory use (Linux; zeros elsewhere).
func Self() Usage {
	var u Usage
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return u
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "RssAnon:":
			u.RSSAnon = kb * 1024
		case "RssFile:":
			u.RSSFile = kb * 1024
		case "VmHWM:":
			u.PeakRSS = kb * 1024
		}
	}
	return u
}
