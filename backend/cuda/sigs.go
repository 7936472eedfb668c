package cuda

import "strings"

// kernelSig lists each kernel's parameters as "name:kind" (kind p pointer,
// i int, u unsigned, f float, l 64-bit integer), in order. Launch checks
// the arguments it is given against it, and TestKernelSignatures checks it
// against the extern "C" declarations in kernels/*.cu, so that a kernel's
// parameter list and its Go launch wrapper cannot drift apart silently.
var kernelSig = map[string]string{}

const gemvSig = "codes:p scales:p offs:p xq:p fac:p y:p R:i C:i U:i G:i gs:i ldq:i nt:i t0:u t1:u lanesLog2:i"

func init() {
	for _, k := range []string{"k2", "k3", "k4"} {
		for _, t := range []string{"t1", "t8"} {
			kernelSig["upg_gemv_"+k+"_"+t] = gemvSig
		}
	}
	kernelSig["upg_rotq"] = "x:p ldx:i signs:p rb:i gs:i seg:i C:i G:i alpha:f beta:f xr:p xq:p ldq:i fac:p"
	kernelSig["upg_overlay"] = "idx:p vals:p K:i xr:p y:p R:i C:i n:i"
	kernelSig["upg_gemv_f16"] = "w:p ldw:i x:p ldx:i y:p R:i C:i nt:i"
}

// sigKinds returns the kinds of a signature, one byte per parameter.
func sigKinds(sig string) []byte {
	var k []byte
	for _, f := range strings.Fields(sig) {
		k = append(k, f[len(f)-1])
	}
	return k
}
