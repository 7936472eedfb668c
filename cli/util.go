package cli

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
)

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

// DemoModel is the bundled demo model's path relative to the repository root.
const DemoModel = "models/miniphi-29m.upg"

// demoModelPath finds the bundled demo model: $UPG_DEMO_MODEL, then
// models/ under the working directory or its parents, then beside the binary.
func demoModelPath() (string, error) {
	if p := os.Getenv("UPG_DEMO_MODEL"); p != "" {
		return p, nil
	}
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
	}
	for _, d := range dirs {
		p := filepath.Join(d, DemoModel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no --model given and the bundled demo model " + DemoModel + " was not found (run from the repository, or set UPG_DEMO_MODEL)")
}
