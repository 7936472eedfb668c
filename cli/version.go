package cli

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/backend/cpu"
)

// Version and Commit describe the build; release builds set them with
// -ldflags "-X github.com/upg-ai/upg/cli.Version=v1.2.3 -X github.com/upg-ai/upg/cli.Commit=abc123".
// Without them the commit comes from the Go build's VCS stamp, if any.
var (
	Version = "dev"
	Commit  = ""
)

// versionText describes this binary: version, commit, Go version and
// platform, and the CPU kernel level it runs.
func versionText() string {
	commit, when, modified := "unknown", "", false
	version := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if Commit != "" {
		commit = Commit
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	var extra []string
	if when != "" {
		extra = append(extra, when)
	}
	if modified {
		extra = append(extra, "modified")
	}
	if len(extra) > 0 {
		commit += " (" + strings.Join(extra, ", ") + ")"
	}
	var levels []string
	for _, l := range cpu.Levels() {
		levels = append(levels, l.String())
	}
	level := cpu.BestLevel().String()
	if v := os.Getenv(cpu.KernelEnv); v != "" && strings.Contains(" "+strings.Join(levels, " ")+" ", " "+v+" ") {
		level = v + ", set by " + cpu.KernelEnv
	}
	return fmt.Sprintf("upg %s\ncommit   %s\ngo       %s %s/%s\nkernels  %s (this CPU supports: %s)\ncores    %d physical\n",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, level, strings.Join(levels, ", "), cpu.PhysicalCores())
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and CPU kernel level",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Print(versionText())
			return nil
		},
	}
}
