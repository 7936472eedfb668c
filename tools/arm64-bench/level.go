//go:build ignore

// Prints the CPU backend's kernel level on this machine (used by run.sh).
package main

import (
	"fmt"

	"github.com/upg-ai/upg/backend/cpu"
)

func main() {
	b := cpu.New(1)
	defer b.Close()
	fmt.Println(b.Name(), "levels:", cpu.Levels(), "cores:", cpu.PhysicalCores())
}
