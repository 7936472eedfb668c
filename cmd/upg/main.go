// Command upg compresses language models about ten times and runs them fast.
// See `upg --help`; the commands live in package cli.
package main

import (
	"os"

	"github.com/upg-ai/upg/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
