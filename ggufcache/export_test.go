package ggufcache

import "github.com/upg-ai/upg/compress"

// Test access to the package's hooks.

const PartialPrefix = partialPrefix

var StaleAfter = &staleAfter

// SetConvert replaces the compressor until the returned function is called.
func SetConvert(f func(src, out string, opts compress.Options) error) (restore func()) {
	old := convert
	convert = f
	return func() { convert = old }
}

// SetExit replaces os.Exit for the signal handler.
func SetExit(f func(int)) (restore func()) {
	old := exit
	exit = f
	return func() { exit = old }
}
