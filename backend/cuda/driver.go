//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The CUDA driver API (libcuda.so.1), called through purego: no cgo and no
// CUDA toolkit are needed to build, and a machine without the driver gets a
// clear error at run time instead of a failed build or a failed start.

// MinDriverVersion is the oldest driver API version the embedded kernels
// load on: the fatbin is built by nvcc 13.0, whose PTX (and cubin) need a
// CUDA 13.0 driver (R580 or newer).
const MinDriverVersion = 13000

// libName is the driver library; LibEnv overrides it (tests, odd installs).
const (
	libName = "libcuda.so.1"
	LibEnv  = "UPG_LIBCUDA"
)

// sym holds the addresses of the driver functions UPG calls.
var sym struct {
	cuInit, cuDriverGetVersion, cuGetErrorName, cuGetErrorString                              uintptr
	cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute, cuDeviceTotalMem    uintptr
	cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxSynchronize    uintptr
	cuMemAlloc, cuMemFree, cuMemGetInfo, cuMemAllocHost, cuMemFreeHost                        uintptr
	cuMemcpyDtoH, cuMemcpyHtoDAsync, cuMemcpyDtoHAsync                                        uintptr
	cuMemcpyDtoDAsync, cuMemsetD32Async, cuMemsetD8Async                                      uintptr
	cuModuleLoadData, cuModuleUnload, cuModuleGetFunction, cuFuncGetAttribute, cuLaunchKernel uintptr
	cuStreamCreate, cuStreamDestroy, cuStreamSynchronize                                      uintptr
	cuEventCreate, cuEventDestroy, cuEventRecord, cuEventSynchronize, cuEventElapsedTime      uintptr
	cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiateWithFlags, cuGraphLaunch      uintptr
	cuGraphExecDestroy, cuGraphDestroy                                                        uintptr
	cuLaunchKernelEx                                                                          uintptr // optional (0 when absent): programmatic dependent launch
	cuModuleGetGlobal                                                                         uintptr // optional: the step trace (TraceEnv)
	cuOccupancyMaxActiveBlocksPerMultiprocessor                                               uintptr // optional: split-K planning (mmaSplits)
	cuFuncSetAttribute                                                                        uintptr // optional: the persistent step's shared memory (pstep.go)
}

var (
	loadOnce sync.Once
	loadErr  error
)

// loadDriver opens libcuda and resolves every symbol once.
func loadDriver() error {
	loadOnce.Do(func() { loadErr = openDriver() })
	return loadErr
}

func openDriver() error {
	name := libName
	if v := getenv(LibEnv); v != "" {
		name = v
	}
	lib, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("cuda: %w: cannot load %s (%v); install the NVIDIA driver or use --device cpu", ErrNoDriver, name, err)
	}
	for _, s := range []struct {
		p    *uintptr
		name string
	}{
		{&sym.cuInit, "cuInit"}, {&sym.cuDriverGetVersion, "cuDriverGetVersion"},
		{&sym.cuGetErrorName, "cuGetErrorName"}, {&sym.cuGetErrorString, "cuGetErrorString"},
		{&sym.cuDeviceGetCount, "cuDeviceGetCount"}, {&sym.cuDeviceGet, "cuDeviceGet"},
		{&sym.cuDeviceGetName, "cuDeviceGetName"}, {&sym.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		{&sym.cuDeviceTotalMem, "cuDeviceTotalMem_v2"},
		{&sym.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&sym.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		{&sym.cuCtxSetCurrent, "cuCtxSetCurrent"}, {&sym.cuCtxSynchronize, "cuCtxSynchronize"},
		{&sym.cuMemAlloc, "cuMemAlloc_v2"}, {&sym.cuMemFree, "cuMemFree_v2"}, {&sym.cuMemGetInfo, "cuMemGetInfo_v2"},
		{&sym.cuMemAllocHost, "cuMemAllocHost_v2"}, {&sym.cuMemFreeHost, "cuMemFreeHost"},
		{&sym.cuMemcpyDtoH, "cuMemcpyDtoH_v2"},
		{&sym.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"}, {&sym.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&sym.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"},
		{&sym.cuMemsetD32Async, "cuMemsetD32Async"}, {&sym.cuMemsetD8Async, "cuMemsetD8Async"},
		{&sym.cuModuleLoadData, "cuModuleLoadData"}, {&sym.cuModuleUnload, "cuModuleUnload"},
		{&sym.cuModuleGetFunction, "cuModuleGetFunction"}, {&sym.cuFuncGetAttribute, "cuFuncGetAttribute"},
		{&sym.cuLaunchKernel, "cuLaunchKernel"},
		{&sym.cuStreamCreate, "cuStreamCreate"}, {&sym.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&sym.cuStreamSynchronize, "cuStreamSynchronize"},
		{&sym.cuEventCreate, "cuEventCreate"}, {&sym.cuEventDestroy, "cuEventDestroy_v2"},
		{&sym.cuEventRecord, "cuEventRecord"}, {&sym.cuEventSynchronize, "cuEventSynchronize"},
		{&sym.cuEventElapsedTime, "cuEventElapsedTime"},
		{&sym.cuStreamBeginCapture, "cuStreamBeginCapture_v2"}, {&sym.cuStreamEndCapture, "cuStreamEndCapture"},
		{&sym.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"}, {&sym.cuGraphLaunch, "cuGraphLaunch"},
		{&sym.cuGraphExecDestroy, "cuGraphExecDestroy"}, {&sym.cuGraphDestroy, "cuGraphDestroy"},
	} {
		p, err := purego.Dlsym(lib, s.name)
		if err != nil || p == 0 {
			return fmt.Errorf("cuda: the NVIDIA driver (%s) lacks %s; it is too old, need CUDA %s (R580+)", name, s.name, versionString(MinDriverVersion))
		}
		*s.p = p
	}
	if p, err := purego.Dlsym(lib, "cuLaunchKernelEx"); err == nil {
		sym.cuLaunchKernelEx = p
	}
	if p, err := purego.Dlsym(lib, "cuModuleGetGlobal_v2"); err == nil {
		sym.cuModuleGetGlobal = p
	}
	if p, err := purego.Dlsym(lib, "cuOccupancyMaxActiveBlocksPerMultiprocessor"); err == nil {
		sym.cuOccupancyMaxActiveBlocksPerMultiprocessor = p
	}
	if p, err := purego.Dlsym(lib, "cuFuncSetAttribute"); err == nil {
		sym.cuFuncSetAttribute = p
	}
	return nil
}

// call invokes a driver function and turns a non-zero CUresult into an
// error naming the operation. Pointers go in as uintptr(unsafe.Pointer(&v))
// written in the call's argument list, which uintptrescapes keeps valid.
//
//go:uintptrescapes
func call(op string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if r32 := uint32(r); r32 != 0 {
		return &Error{Op: op, Code: int(r32)}
	}
	return nil
}

// Error is a failed driver call.
type Error struct {
	Op   string
	Code int
}

// Well-known CUresult codes.
const (
	errOutOfMemory    = 2
	errNoDevice       = 100
	errInvalidDevice  = 101
	errNoBinaryForGPU = 209
)

func (e *Error) Error() string {
	return fmt.Sprintf("cuda: %s: %s (%d): %s", e.Op, errName(e.Code), e.Code, errString(e.Code))
}

func errName(code int) string {
	if sym.cuGetErrorName == 0 {
		return "CUDA_ERROR"
	}
	var p uintptr
	r, _, _ := purego.SyscallN(sym.cuGetErrorName, uintptr(code), uintptr(unsafe.Pointer(&p)))
	if r != 0 || p == 0 {
		return "CUDA_ERROR_UNKNOWN"
	}
	return cString(p)
}

func errString(code int) string {
	if sym.cuGetErrorString == 0 {
		return "unknown error"
	}
	var p uintptr
	r, _, _ := purego.SyscallN(sym.cuGetErrorString, uintptr(code), uintptr(unsafe.Pointer(&p)))
	if r != 0 || p == 0 {
		return "unknown error"
	}
	return cString(p)
}

// versionString formats a driver API version (major*1000 + minor*10).
func versionString(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// cString copies a NUL-terminated C string.
func cString(p uintptr) string {
	var b []byte
	for i := uintptr(0); i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(nil), p+i)) //nolint:govet // C memory
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}
