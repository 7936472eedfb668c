package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/upg-ai/upg/engine"
)

// Error codes returned by every upg_* function (0 = success). The Python
// package maps each to an exception class.
const (
	codeOK        = 0
	codeError     = 1 // anything else (an internal error, a failed run)
	codeArgument  = 2 // a bad argument: option out of range, unknown role, token id out of range
	codeNotFound  = 3 // a path that does not exist
	codeFormat    = 4 // a file that is not a model UPG can run: corrupt, truncated, unsupported
	codeClosed    = 5 // a handle that was freed or never existed
	codeCancelled = 6 // the operation was cancelled
	codeIO        = 7 // another operating-system error (permissions, disk full)
	codeTooSmall  = 8 // the caller's buffer is too small (the size needed is returned)
	codeDevice    = 9 // the GPU asked for is not usable: no NVIDIA driver or GPU, a driver too old, too little device memory
)

// apiError carries an error code chosen where the error is made.
type apiError struct {
	code int
	err  error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func argErrorf(format string, a ...any) error {
	return &apiError{codeArgument, fmt.Errorf(format, a...)}
}

var (
	errClosed    = &apiError{codeClosed, errors.New("the model was closed")}
	errCancelled = &apiError{codeCancelled, errors.New("cancelled")}
)

// optionNames says the command line's flags in the library's advice
// ("use --device cpu", "--gpu-layers 26 fits", "raise --target-bpw") as
// the C ABI's options, which its callers set (the longer of two flags
// that start alike first).
var optionNames = strings.NewReplacer("--device cpu", `device "cpu"`,
	"--gpu-layers", "gpu_layers", "--kv-cache", "kv_cache", "--ref-device", "ref_device",
	"--target-bpw", "target_bpw", "--target-size", "target_size", "--calib-tokens", "calib_tokens", "--calib-ctx", "calib_ctx",
	"--calib", "calib", "--token-weights", "token_weights", "--output-targets", "output_targets",
	"--rotate-residual", "rotate_residual", "--codec", "codec", "--ctx", "ctx", "--threads", "threads", "--lookup", "lookup")

// abiError is err with its message in the C ABI's option names; errors.Is
// and errors.As still see err.
type abiError struct{ err error }

func (e abiError) Error() string { return optionNames.Replace(e.err.Error()) }
func (e abiError) Unwrap() error { return e.err }

// classify picks the code of err; fallback is the code of errors that name
// no class themselves (codeFormat for operations that open a model file).
func classify(err error, fallback int) int {
	var ae *apiError
	var pe *fs.PathError
	switch {
	case errors.As(err, &ae):
		return ae.code
	case errors.Is(err, engine.ErrDevice):
		return codeDevice
	case errors.Is(err, fs.ErrNotExist):
		return codeNotFound
	case errors.As(err, &pe) && fallback != codeFormat:
		return codeIO
	case errors.Is(err, fs.ErrPermission):
		return codeIO
	}
	return fallback
}

// Handles: C holds integers, never Go pointers. 0 is never a handle.
var handles = struct {
	sync.Mutex
	next uint64
	objs map[uint64]any
}{objs: map[uint64]any{}}

func newHandle(obj any) uint64 {
	handles.Lock()
	defer handles.Unlock()
	handles.next++
	handles.objs[handles.next] = obj
	return handles.next
}

// lookup returns the object of handle h if it has type T.
func lookup[T any](h uint64) (T, error) {
	handles.Lock()
	obj, ok := handles.objs[h]
	handles.Unlock()
	t, isT := obj.(T)
	if !ok || !isT {
		var zero T
		return zero, &apiError{codeClosed, fmt.Errorf("invalid handle %d (closed, or not a %T)", h, zero)}
	}
	return t, nil
}

// release forgets handle h and returns its object.
func release[T any](h uint64) (T, error) {
	t, err := lookup[T](h)
	if err != nil {
		return t, err
	}
	handles.Lock()
	delete(handles.objs, h)
	handles.Unlock()
	return t, nil
}

// liveHandles counts handles (for tests: nothing leaks).
func liveHandles() int {
	handles.Lock()
	defer handles.Unlock()
	return len(handles.objs)
}
