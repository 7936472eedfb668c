// Command capi is UPG's C ABI, built with
//
//	go build -buildmode=c-shared -o libupg.so ./capi
//
// which also writes libupg.h. The Python package (python/) loads it with
// ctypes; any language with a C FFI can.
//
// Conventions:
//   - Objects (models, generations, jobs) are opaque 64-bit handles; C never
//     holds a Go pointer. 0 is never a handle.
//   - Every function returns an int32 code: 0 on success, else one of the
//     UPG_ERR_* codes below, with a message in *err (when err is not NULL)
//     that the caller frees with upg_free. Strings returned through char**
//     are also freed with upg_free. Strings passed in are UTF-8, NUL-ended
//     unless a length is given.
//   - Functions may be called from any thread; calls on different models run
//     in parallel. On one model, generations take turns (one owns the model's
//     conversation from its first poll to its end) and logits run between
//     steps. The library never calls back into the caller: long operations
//     are started, then polled with a timeout, so that the caller can report
//     progress and notice Ctrl-C between polls, and cancel. A generation runs
//     on the polling thread itself (no thread hands text to another);
//     compress, evaluate and batch generations (upg_batch_start: many
//     requests stepped together, up to the model's max_batch) are jobs that
//     run on Go's threads.
//   - Go panics in the calling goroutine become UPG_ERR (1) errors.
//
// Codes: 1 error, 2 bad argument, 3 not found, 4 bad model file (corrupt,
// unsupported), 5 closed or unknown handle, 6 cancelled, 7 other I/O error,
// 8 buffer too small, 9 the GPU asked for is not usable (no NVIDIA driver or
// GPU, a driver too old, too little device memory).
package main

// main is required of a c-shared library and never runs. It lives apart from
// the cgo exports so that the package also builds (and vets) without a C
// compiler, as an empty program.
func main() {}
