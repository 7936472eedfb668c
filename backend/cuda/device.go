//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/upg-ai/upg/internal/units"
)

// DevPtr is a device address.
type DevPtr uintptr

// Device is one GPU's primary context, owned by a goroutine locked to its OS
// thread: every driver call runs there, in order (Do), so the context is
// current on exactly one thread and stream order is call order.
type Device struct {
	own *owner // the owner thread (owner.go)

	ordinal      int
	dev          int32
	ctx          uintptr
	stream       uintptr
	Name         string
	Major        int // compute capability
	Minor        int
	SMs          int
	TotalMem     uint64
	DriverVer    int
	L2Bytes      int
	mod          uintptr
	fns          map[string]uintptr
	occ          map[occKey]int // blocksPerSM's answers
	params       *launchParams  // argument marshalling, heap memory reused by every launch
	launches     int64          // kernels launched (not counting graph replays); owner thread only
	prof         *profiler      // ProfileEnv's kernel timing (nil when off); owner thread only
	trace        *tracer        // TraceEnv's step trace (nil when off); owner thread only
	sk           streamKBufs    // the stream-K GEMV's partial rows and counters (streamk.go)
	pdl          bool           // launch pdlKernel kernels with programmatic dependent launch (PDLEnv)
	ablate       []string       // name prefixes of kernels not launched (AblateEnv; measurements only)
	twice        []string       // name prefixes of kernels launched twice in a row (TwiceEnv; measurements only)
	attnClusters int64          // upg_attn_cluster_rotq launches (tests)
	selfQuants   int64          // rope GEMVs that quantized their own input (gemvSelfQ; tests)
	psteps       int64          // upg_pstep launches, not counting graph replays (tests)
	clusterOK    bool           // the module has upg_attn_cluster_rotq's kernels (checked once by New)
	closed       bool

	// memCap, when > 0, caps the device memory UPG allocates (MemEnv);
	// used and sizes count what is allocated (owner thread only).
	memCap uint64
	used   uint64
	sizes  map[DevPtr]uint64
}

func memCapFromEnv() (uint64, error) {
	v := os.Getenv(MemEnv)
	if v == "" {
		return 0, nil
	}
	n, err := units.ParseSize(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("cuda: %s=%q: want a positive size such as 12GiB", MemEnv, v)
	}
	return uint64(n), nil
}

// launchParams is the memory cuLaunchKernel's kernelParams point into,
// and cuLaunchKernelEx's configuration with its attributes (programmatic
// serialization, a cluster's dimension).
type launchParams struct {
	vals  [maxKernelArgs]uint64
	ptrs  [maxKernelArgs]uintptr
	cfg   launchConfig
	attrs [3]launchAttribute
}

// launchConfig is the driver's CUlaunchConfig (64-bit layout).
type launchConfig struct {
	grid     [3]uint32
	block    [3]uint32
	smem     uint32
	_        uint32
	stream   uintptr
	attrs    uintptr // *launchAttribute
	numAttrs uint32
	_        uint32
}

// launchAttribute is the driver's CUlaunchAttribute: an id, padding, and a
// 64-byte value union whose first int is the programmatic-serialization flag.
type launchAttribute struct {
	id    uint32
	_     uint32
	value [64]byte
}

// attrProgrammaticStreamSerialization is CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
// attrClusterDimension CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION (three uint32s),
// attrCooperative CU_LAUNCH_ATTRIBUTE_COOPERATIVE (an int: every block
// resident at once, which the persistent step's waits between blocks need).
const (
	attrProgrammaticStreamSerialization = 6
	attrClusterDimension                = 4
	attrCooperative                     = 2
)

// maxKernelArgs is the most parameters a launch takes (launch's arrays);
// TestKernelArgsFit checks every kernelSig against it (run 220's first
// build of the self-quantizing rope GEMVs, 40 parameters, failed every
// launch of them on the old 32).
const maxKernelArgs = 48

// Attribute numbers of cuDeviceGetAttribute.
const (
	attrSMCount     = 16
	attrCCMajor     = 75
	attrCCMinor     = 76
	attrL2CacheSize = 38
)

// Probe reports why CUDA cannot be used here, or nil when a device with a
// recent enough driver exists. It does not create a context.
func Probe() error {
	if err := loadDriver(); err != nil {
		return err
	}
	return probe()
}

func probe() error {
	if err := call("cuInit", sym.cuInit, 0); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == errNoDevice {
			return noDeviceError(true)
		}
		return fmt.Errorf("cuda: cannot initialise the driver: %v", err)
	}
	var v int32
	if err := call("cuDriverGetVersion", sym.cuDriverGetVersion, uintptr(unsafe.Pointer(&v))); err != nil {
		return err
	}
	if int(v) < MinDriverVersion {
		return fmt.Errorf("cuda: the NVIDIA driver supports CUDA %s, UPG's kernels need %s (driver R580 or newer); update the driver or use --device cpu",
			versionString(int(v)), versionString(MinDriverVersion))
	}
	var n int32
	if err := call("cuDeviceGetCount", sym.cuDeviceGetCount, uintptr(unsafe.Pointer(&n))); err != nil {
		return err
	}
	if n == 0 {
		return noDeviceError(false)
	}
	return nil
}

// Open starts the owner thread and makes device ordinal's primary context
// current on it.
func Open(ordinal int) (*Device, error) {
	memCap, err := memCapFromEnv()
	if err != nil {
		return nil, err
	}
	if err := loadDriver(); err != nil {
		return nil, err
	}
	d := &Device{ordinal: ordinal, fns: map[string]uintptr{}, occ: map[occKey]int{}, params: new(launchParams),
		memCap: memCap, sizes: map[DevPtr]uint64{}}
	if d.own, err = startOwner(ownerSpin(), d.init, d.release); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Device) init() error {
	if err := probe(); err != nil {
		return err
	}
	var n int32
	if err := call("cuDeviceGetCount", sym.cuDeviceGetCount, uintptr(unsafe.Pointer(&n))); err != nil {
		return err
	}
	if d.ordinal < 0 || d.ordinal >= int(n) {
		return fmt.Errorf("cuda: GPU %d does not exist (%d found)", d.ordinal, n)
	}
	if err := call("cuDeviceGet", sym.cuDeviceGet, uintptr(unsafe.Pointer(&d.dev)), uintptr(d.ordinal)); err != nil {
		return err
	}
	var v int32
	if err := call("cuDriverGetVersion", sym.cuDriverGetVersion, uintptr(unsafe.Pointer(&v))); err != nil {
		return err
	}
	d.DriverVer = int(v)
	name := make([]byte, 256)
	if err := call("cuDeviceGetName", sym.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), 256, uintptr(d.dev)); err != nil {
		return err
	}
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	d.Name = string(name)
	for _, a := range []struct {
		p    *int
		attr int
	}{{&d.SMs, attrSMCount}, {&d.Major, attrCCMajor}, {&d.Minor, attrCCMinor}, {&d.L2Bytes, attrL2CacheSize}} {
		var x int32
		if err := call("cuDeviceGetAttribute", sym.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&x)), uintptr(a.attr), uintptr(d.dev)); err != nil {
			return err
		}
		*a.p = int(x)
	}
	var tm uint64
	if err := call("cuDeviceTotalMem", sym.cuDeviceTotalMem, uintptr(unsafe.Pointer(&tm)), uintptr(d.dev)); err != nil {
		return err
	}
	d.TotalMem = tm
	if d.Major < 8 {
		return fmt.Errorf("cuda: %s is compute capability %d.%d; UPG's kernels need 8.0 or newer (Ampere, Ada, Hopper, ...)", d.Name, d.Major, d.Minor)
	}
	if err := call("cuDevicePrimaryCtxRetain", sym.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&d.ctx)), uintptr(d.dev)); err != nil {
		return err
	}
	if err := call("cuCtxSetCurrent", sym.cuCtxSetCurrent, d.ctx); err != nil {
		return err
	}
	const nonBlocking = 1
	if err := call("cuStreamCreate", sym.cuStreamCreate, uintptr(unsafe.Pointer(&d.stream)), nonBlocking); err != nil {
		return err
	}
	d.pdl = pdlOn(d.Major, sym.cuLaunchKernelEx != 0, os.Getenv(PDLEnv))
	if d.ablate = prefixList(os.Getenv(AblateEnv)); d.ablate != nil {
		slog.Warn("cuda: kernels left out of every step; results are wrong", "env", AblateEnv, "prefixes", d.ablate)
	}
	if d.twice = prefixList(os.Getenv(TwiceEnv)); d.twice != nil {
		slog.Warn("cuda: kernels launched twice in every step (a measurement)", "env", TwiceEnv, "prefixes", d.twice)
	}
	return nil
}

// pdlOn reports whether kernels are launched with programmatic dependent
// launch on a GPU of compute capability major: only sm_90 (Hopper). The
// kernels' waits (griddepcontrol) are in the sm_90 machine code; a newer GPU
// JIT-compiles the fatbin's compute_80 PTX, whose kernels do not wait, so a
// dependent launched early there would read its inputs before they are
// written. env is PDLEnv ("0": off).
func pdlOn(major int, launchEx bool, env string) bool {
	return major == 9 && launchEx && env != "0"
}

// prefixList parses a list of kernel name prefixes (AblateEnv, TwiceEnv):
// the non-empty comma-separated prefixes, nil for none.
func prefixList(env string) []string {
	var l []string
	for _, p := range strings.Split(env, ",") {
		if p = strings.TrimSpace(p); p != "" {
			l = append(l, p)
		}
	}
	return l
}

// ablated reports whether a launch of kernel name is left out (AblateEnv).
func (d *Device) ablated(name string) bool { return hasAnyPrefix(name, d.ablate) }

// hasAnyPrefix reports whether name starts with one of prefixes.
func hasAnyPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (d *Device) release() {
	if d.mod != 0 {
		_ = call("cuModuleUnload", sym.cuModuleUnload, d.mod)
	}
	if d.stream != 0 {
		_ = call("cuStreamDestroy", sym.cuStreamDestroy, d.stream)
	}
	if d.ctx != 0 {
		_ = call("cuDevicePrimaryCtxRelease", sym.cuDevicePrimaryCtxRelease, uintptr(d.dev))
	}
}

// Do runs f on the owner thread and waits for it.
func (d *Device) Do(f func() error) error {
	if d.closed {
		return fmt.Errorf("cuda: device is closed")
	}
	var err error
	d.own.run(func() { err = f() })
	return err
}

// Close synchronizes, frees the context's module and stream and stops the
// owner thread. Memory allocated with Alloc must be freed before.
func (d *Device) Close() {
	if d.closed {
		return
	}
	_ = d.Do(func() error { d.freeStreamK(); return d.sync() })
	d.closed = true
	d.own.stop()
}

// The methods below whose names start with a lower-case letter must run on
// the owner thread (inside Do).

func (d *Device) sync() error { return call("cuStreamSynchronize", sym.cuStreamSynchronize, d.stream) }

// memInfo returns free and total device memory.
func (d *Device) memInfo() (free, total uint64, err error) {
	if free, total, err = driverMemInfo(); err != nil {
		return
	}
	if d.memCap > 0 {
		left := uint64(0)
		if d.used < d.memCap {
			left = d.memCap - d.used
		}
		free, total = min(free, left), min(total, d.memCap)
	}
	return
}

// driverMemInfo is the driver's free and total device memory, uncapped.
func driverMemInfo() (free, total uint64, err error) {
	err = call("cuMemGetInfo", sym.cuMemGetInfo, uintptr(unsafe.Pointer(&free)), uintptr(unsafe.Pointer(&total)))
	return
}

// alloc allocates n bytes (at least 1); out of memory says how much was
// asked and how much is free.
func (d *Device) alloc(n int64, what string) (DevPtr, error) {
	if n <= 0 {
		n = 1
	}
	if d.memCap > 0 && d.used+uint64(n) > d.memCap {
		free, total, _ := d.memInfo()
		return 0, &OOMError{What: what, Need: n, Free: free, Total: total, Device: d.Name + " (capped by " + MemEnv + ")"}
	}
	var p uintptr
	err := call("cuMemAlloc", sym.cuMemAlloc, uintptr(unsafe.Pointer(&p)), uintptr(n))
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == errOutOfMemory {
			free, total, _ := d.memInfo()
			return 0, &OOMError{What: what, Need: n, Free: free, Total: total, Device: d.Name}
		}
		return 0, err
	}
	d.used += uint64(n)
	d.sizes[DevPtr(p)] = uint64(n)
	return DevPtr(p), nil
}

// OOMError is an allocation the device could not satisfy.
type OOMError struct {
	What        string
	Need        int64
	Free, Total uint64
	Device      string
}

func (e *OOMError) Error() string {
	return fmt.Sprintf("cuda: out of device memory for %s: need %s, %s free of %s on %s",
		e.What, gib(uint64(e.Need)), gib(e.Free), gib(e.Total), e.Device)
}

func gib(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

func (d *Device) free(p DevPtr) {
	if p != 0 {
		_ = call("cuMemFree", sym.cuMemFree, uintptr(p))
		d.used -= d.sizes[p]
		delete(d.sizes, p)
	}
}

// Alloc allocates n bytes of device memory.
func (d *Device) Alloc(n int64, what string) (DevPtr, error) {
	var p DevPtr
	err := d.Do(func() (err error) { p, err = d.alloc(n, what); return })
	return p, err
}

// Free releases memory from Alloc.
func (d *Device) Free(p DevPtr) { _ = d.Do(func() error { d.free(p); return nil }) }

// MemInfo returns free and total device memory.
func (d *Device) MemInfo() (free, total uint64, err error) {
	err = d.Do(func() (err error) { free, total, err = d.memInfo(); return })
	return
}

// htod copies host bytes to the device (synchronous with the stream: the
// stream is drained first, then the copy completes before return). The
// copy is queued on the stream, not made with cuMemcpyHtoD: from pageable
// memory that returns once the bytes are staged, before their DMA lands
// (the driver API's "API synchronization behavior"), and it runs on the
// legacy stream, which the non-blocking stream does not wait for, so a
// kernel launched next could read part of the old bytes (run 123's
// TestGPUTrellisGemv: an 800 KB activation upload, token 25 wrong).
func (d *Device) htod(dst DevPtr, src unsafe.Pointer, n int) error {
	if n == 0 {
		return nil
	}
	if err := d.sync(); err != nil {
		return err
	}
	if err := call("cuMemcpyHtoDAsync", sym.cuMemcpyHtoDAsync, uintptr(dst), uintptr(src), uintptr(n), d.stream); err != nil {
		return err
	}
	return d.sync()
}

// dtoh copies device bytes to the host after the stream's work finished.
func (d *Device) dtoh(dst unsafe.Pointer, src DevPtr, n int) error {
	if n == 0 {
		return nil
	}
	if err := d.sync(); err != nil {
		return err
	}
	return call("cuMemcpyDtoH", sym.cuMemcpyDtoH, uintptr(dst), uintptr(src), uintptr(n))
}

// Upload copies b to device memory at dst.
func (d *Device) Upload(dst DevPtr, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	err := d.Do(func() error { return d.htod(dst, unsafe.Pointer(&b[0]), len(b)) })
	runtime.KeepAlive(b)
	return err
}

// Download copies len(b) bytes from src into b after all queued work.
func (d *Device) Download(b []byte, src DevPtr) error {
	if len(b) == 0 {
		return nil
	}
	err := d.Do(func() error { return d.dtoh(unsafe.Pointer(&b[0]), src, len(b)) })
	runtime.KeepAlive(b)
	return err
}

// UploadF32 and DownloadF32 copy float32 slices.
func (d *Device) UploadF32(dst DevPtr, v []float32) error {
	if len(v) == 0 {
		return nil
	}
	return d.Upload(dst, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
}

func (d *Device) DownloadF32(v []float32, src DevPtr) error {
	if len(v) == 0 {
		return nil
	}
	return d.Download(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)), src)
}

// memsetD32 fills n 32-bit words at p with v, in stream order.
func (d *Device) memsetD32(p DevPtr, v uint32, n int) error {
	return call("cuMemsetD32Async", sym.cuMemsetD32Async, uintptr(p), uintptr(v), uintptr(n), d.stream)
}

// Fill32 fills n 32-bit words at p with v.
func (d *Device) Fill32(p DevPtr, v uint32, n int) error {
	return d.Do(func() error { return d.memsetD32(p, v, n) })
}

// loadModule loads a fatbin (or cubin/PTX image); the driver picks the
// machine code for this GPU or JIT-compiles the PTX.
func (d *Device) loadModule(image []byte) error {
	if d.mod != 0 {
		return nil
	}
	err := call("cuModuleLoadData", sym.cuModuleLoadData, uintptr(unsafe.Pointer(&d.mod)), uintptr(unsafe.Pointer(&image[0])))
	runtime.KeepAlive(image)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == errNoBinaryForGPU {
			return fmt.Errorf("cuda: the embedded kernels have no code for %s (compute capability %d.%d): %v", d.Name, d.Major, d.Minor, err)
		}
		return err
	}
	return nil
}

// function returns the kernel named name of the loaded module.
func (d *Device) function(name string) (uintptr, error) {
	if f, ok := d.fns[name]; ok {
		return f, nil
	}
	cname := append([]byte(name), 0)
	var f uintptr
	if err := call("cuModuleGetFunction "+name, sym.cuModuleGetFunction, uintptr(unsafe.Pointer(&f)), d.mod, uintptr(unsafe.Pointer(&cname[0]))); err != nil {
		return 0, err
	}
	d.fns[name] = f
	return f, nil
}

// occKey is a kernel, a block size and the launch's dynamic shared
// memory, for blocksPerSM's answers.
type occKey struct {
	name          string
	threads, smem int
}

// blocksPerSM is how many blocks of kernel name, threads each with smem
// bytes of dynamic shared memory, an SM holds by the driver's occupancy
// calculator, or def when the driver lacks it or the call fails (owner
// thread).
func (d *Device) blocksPerSM(name string, threads, smem, def int) int {
	k := occKey{name, threads, smem}
	n, ok := d.occ[k]
	if !ok {
		if sym.cuOccupancyMaxActiveBlocksPerMultiprocessor != 0 {
			if f, err := d.function(name); err == nil {
				var v int32
				if call("cuOccupancyMaxActiveBlocksPerMultiprocessor "+name, sym.cuOccupancyMaxActiveBlocksPerMultiprocessor,
					uintptr(unsafe.Pointer(&v)), f, uintptr(threads), uintptr(smem)) == nil && v > 0 {
					n = int(v)
				}
			}
		}
		d.occ[k] = n // 0: no answer
	}
	if n == 0 {
		return def
	}
	return n
}

// launchWaves says how a launch of blocks blocks fills SMs that hold perSM
// of them each (0: unknown): "1120 blocks, 4 an SM: 3 waves". The step
// trace names launches so: a launch just over a wave takes two rounds of
// its blocks' latency (NOTES.md run 101).
func launchWaves(blocks, perSM, sms int) string {
	if perSM <= 0 || sms <= 0 {
		return fmt.Sprintf("%d blocks", blocks)
	}
	slots := perSM * sms
	w := (blocks + slots - 1) / slots
	if w == 1 {
		return fmt.Sprintf("%d blocks, %d an SM: 1 wave", blocks, perSM)
	}
	return fmt.Sprintf("%d blocks, %d an SM: %d waves", blocks, perSM, w)
}

// launch enqueues kernel f with the given argument values (each passed by
// address as the kernel's parameter of the matching size).
func (d *Device) launch(name string, f uintptr, grid, block [3]uint32, smem uint32, args []Arg) error {
	p := d.params
	if len(args) > maxKernelArgs {
		return fmt.Errorf("cuda: %s: %d arguments > %d", name, len(args), maxKernelArgs)
	}
	for i, a := range args {
		p.vals[i] = a.v
		p.ptrs[i] = uintptr(unsafe.Pointer(&p.vals[i]))
	}
	var pp uintptr
	if len(args) > 0 {
		pp = uintptr(unsafe.Pointer(&p.ptrs[0]))
	}
	d.launches++
	if d.ablated(name) {
		return nil
	}
	if hasAnyPrefix(name, d.twice) {
		if err := d.cuLaunch(name, f, grid, block, smem, pp); err != nil {
			return err
		}
	}
	if d.prof != nil { // the closure (a heap allocation) only when profiling
		return d.prof.around(d, name, func() error { return d.cuLaunch(name, f, grid, block, smem, pp) })
	}
	return d.cuLaunch(name, f, grid, block, smem, pp)
}

// cuLaunch enqueues f with its marshalled parameters pp (d.params).
func (d *Device) cuLaunch(name string, f uintptr, grid, block [3]uint32, smem uint32, pp uintptr) error {
	p := d.params
	var r uintptr
	pdl, cl, coop := d.pdl && pdlKernel(name), clusterOf(name), name == "upg_pstep"
	if cl > 1 && sym.cuLaunchKernelEx == 0 {
		return fmt.Errorf("cuda: %s needs clusters of %d blocks: the driver lacks cuLaunchKernelEx", name, cl)
	}
	if coop && sym.cuLaunchKernelEx == 0 {
		return fmt.Errorf("cuda: %s needs a cooperative launch: the driver lacks cuLaunchKernelEx", name)
	}
	if pdl || cl > 1 || coop {
		n := 0
		if pdl {
			// programmatic dependent launch: the kernel may start while the
			// one before it finishes; it prefetches its weights and then
			// waits (griddepcontrol.wait) for that kernel's results
			p.attrs[n] = launchAttribute{id: attrProgrammaticStreamSerialization}
			p.attrs[n].value[0] = 1
			n++
		}
		if cl > 1 {
			p.attrs[n] = launchAttribute{id: attrClusterDimension}
			binary.LittleEndian.PutUint32(p.attrs[n].value[0:], cl)
			binary.LittleEndian.PutUint32(p.attrs[n].value[4:], 1)
			binary.LittleEndian.PutUint32(p.attrs[n].value[8:], 1)
			n++
		}
		if coop {
			d.psteps++
			p.attrs[n] = launchAttribute{id: attrCooperative}
			binary.LittleEndian.PutUint32(p.attrs[n].value[0:], 1)
			n++
		}
		c := &p.cfg
		*c = launchConfig{grid: grid, block: block, smem: smem, stream: d.stream,
			attrs: uintptr(unsafe.Pointer(&p.attrs[0])), numAttrs: uint32(n)}
		r, _, _ = purego.SyscallN(sym.cuLaunchKernelEx, uintptr(unsafe.Pointer(c)), f, pp, 0)
	} else {
		r, _, _ = purego.SyscallN(sym.cuLaunchKernel, f, uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]),
			uintptr(block[0]), uintptr(block[1]), uintptr(block[2]), uintptr(smem), d.stream, pp, 0)
	}
	if r != 0 {
		return &Error{Op: "cuLaunchKernel " + name, Code: int(uint32(r))}
	}
	return nil
}

// Arg is one kernel argument: a pointer, a 32-bit integer or a float.
type Arg struct {
	kind byte // 'p' pointer, 'i' int32, 'u' uint32, 'f' float32, 'l' int64
	v    uint64
}

// Ptr, I32, U32, F32 and I64 make kernel arguments.
func Ptr(p DevPtr) Arg  { return Arg{'p', uint64(p)} }
func I32(v int) Arg     { return Arg{'i', uint64(uint32(int32(v)))} }
func U32(v uint32) Arg  { return Arg{'u', uint64(v)} }
func I64(v int64) Arg   { return Arg{'l', uint64(v)} }
func F32(v float32) Arg { return Arg{'f', uint64(f32bits(v))} }

// Event timing.

func (d *Device) eventCreate() (uintptr, error) {
	var e uintptr
	err := call("cuEventCreate", sym.cuEventCreate, uintptr(unsafe.Pointer(&e)), 0)
	return e, err
}

func (d *Device) eventRecord(e uintptr) error {
	return call("cuEventRecord", sym.cuEventRecord, e, d.stream)
}

func (d *Device) eventElapsed(a, b uintptr) (float32, error) {
	if err := call("cuEventSynchronize", sym.cuEventSynchronize, b); err != nil {
		return 0, err
	}
	var ms float32
	err := call("cuEventElapsedTime", sym.cuEventElapsedTime, uintptr(unsafe.Pointer(&ms)), a, b)
	return ms, err
}

func (d *Device) eventDestroy(e uintptr) { _ = call("cuEventDestroy", sym.cuEventDestroy, e) }

// Graphs: capture the stream's work between beginCapture and endCapture
// into an executable graph that launch replays with one call.

func (d *Device) beginCapture() error {
	const relaxed = 2 // CU_STREAM_CAPTURE_MODE_RELAXED
	return call("cuStreamBeginCapture", sym.cuStreamBeginCapture, d.stream, relaxed)
}

func (d *Device) endCapture() (exec uintptr, err error) {
	var g uintptr
	if err = call("cuStreamEndCapture", sym.cuStreamEndCapture, d.stream, uintptr(unsafe.Pointer(&g))); err != nil {
		return 0, err
	}
	defer call("cuGraphDestroy", sym.cuGraphDestroy, g)
	err = call("cuGraphInstantiateWithFlags", sym.cuGraphInstantiateWithFlags, uintptr(unsafe.Pointer(&exec)), g, 0)
	return exec, err
}

func (d *Device) graphLaunch(exec uintptr) error {
	return call("cuGraphLaunch", sym.cuGraphLaunch, exec, d.stream)
}

func (d *Device) graphDestroy(exec uintptr) {
	_ = call("cuGraphExecDestroy", sym.cuGraphExecDestroy, exec)
}

// PDLEnv=0 turns programmatic dependent launch off (comparisons).
const PDLEnv = "UPG_CUDA_PDL"

// AblateEnv lists kernel name prefixes (comma-separated, e.g.
// "upg_rms_rotq,upg_attn") whose launches every step leaves out: what a
// kernel costs the whole step, overlaps and boundaries included, read as the
// step's time without it (NOTES.md run 163). "<kernel>:rotation" (e.g.
// "upg_rms_rotq:rotation") keeps a rotating kernel but launches it with no
// signs and Hadamard blocks of 1 (Device.rotates): what its rotation costs,
// e.g. what a residual stream kept rotated would save (NOTES.md run 179). A
// measurement switch only: the step's results are wrong.
const AblateEnv = "UPG_CUDA_ABLATE"

// TwiceEnv lists kernel name prefixes (comma-separated) whose launches every
// step makes twice in a row, the second after the first (PDL as usual): what
// a second, warm run of a kernel costs beside AblateEnv's cold one — how much
// of a small kernel's time is its code, data or translations not yet near
// the SMs rather than its own work (NOTES.md run 228). Only for kernels that
// compute their outputs from inputs they do not write (the norms, the
// attention, the SwiGLU); a measurement switch.
const TwiceEnv = "UPG_CUDA_TWICE"

// pdlKernel reports whether kernel name starts with pdl_wait() (kernels/
// upg.cu) and so may be launched before the kernel it depends on finishes:
// the dense GEMVs and tensor-core GEMMs (which prefetch their first codes
// before waiting) and the decode step's fused ops.
func pdlKernel(name string) bool {
	for _, p := range []string{"upg_attn_cluster_", "upg_gemv_k", "upg_gemm", "upg_rms_rotq", "upg_swiglu_rotq", "upg_combine_rotq", "upg_rotq", "upg_rope_kv_", "upg_attn_f", "upg_attn_gqa", "upg_attn_cascade", "upg_attn_prefill_", "upg_splitk_sum", "upg_argmax", "upg_attn_rotq_", "upg_splitk_rope_kv_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// clusterOf is the cluster dimension (blocks along x) kernel name is
// launched with: attnClusterSize for upg_attn_cluster_rotq_* (a Hadamard
// block's heads, kernels/fused.cu), 1 (no cluster) for every other kernel.
func clusterOf(name string) uint32 {
	if strings.HasPrefix(name, "upg_attn_cluster_rotq_") {
		return attnClusterSize
	}
	return 1
}
