package cuda

import "strings"

// kernelSig lists each kernel's parameters as "name:kind" (kind p pointer,
// i int, u unsigned, f float, l 64-bit integer), in order. Launch checks
// the arguments it is given against it, and TestKernelSignatures checks it
// against the extern "C" declarations in kernels/*.cu, so that a kernel's
// parameter list and its Go launch wrapper cannot drift apart silently.
var kernelSig = map[string]string{}

// experimentKernels are kernelSig's kernels whose source is in experiments/
// and not yet in the committed fatbin (so not in its manifest): a fatbin
// named by FatbinEnv brings them.
var experimentKernels = map[string]bool{"upg_pstep": true}

// kernelKinds is kernelSig's kinds, one byte per parameter (sigKinds).
var kernelKinds = map[string][]byte{}

const gemvSig = "codes:p scales:p offs:p xq:p fac:p y:p R:i C:i U:i G:i gsl:i ldq:i nt:i t0:u t1:u t2:u t3:u res:p lut:p"

// gemvRopeSig is the rope epilogue's parameters of the _t1r GEMVs (GemvRope).
const gemvRopeSig = "heads:i H:i hd:i kc:p vc:p slots:p bs:i interleave:i cosT:p sinT:p pos:p"

// gemvSelfQSig is the _t1q GEMVs' own quantization of their input (GemvSelfQ, selfQuant).
const gemvSelfQSig = "xf:p sqs:p nsq:i eps:f alpha:f beta:f hout:p"

func init() {
	for _, k := range []string{"k2", "k3", "k4", "k4l", "k8", "k8l"} {
		for _, g := range []string{"g1", "g2", "g4"} {
			kernelSig["upg_gemv_"+k+"_"+g+"_t1"] = gemvSig + " ws:p cnt:p ssq:p"
			kernelSig["upg_gemv_"+k+"_"+g+"_t8"] = gemvSig
		}
	}
	for _, k := range []string{"k2", "k3", "k4", "k4l"} {
		for _, g := range []string{"g1", "g2", "g4"} {
			kernelSig["upg_gemm_"+k+"_"+g] = gemvSig
			kernelSig["upg_gemm32_"+k+"_"+g] = gemvSig
			kernelSig["upg_gemm16_"+k+"_"+g] = gemvSig
		}
	}
	for _, k := range []string{"k2", "k3", "k4", "k4l"} {
		for _, g := range []string{"g1", "g2", "g4"} {
			kernelSig["upg_gemv_"+k+"_"+g+"_sk"] = "codes:p scales:p offs:p xq:p fac:p y:p R:i C:i U:i G:i gsl:i t0:u t1:u t2:u t3:u res:p ws:p cnt:p NW:i maxp:i"
		}
	}
	for _, k := range []string{"upg_gemv_k2_g1", "upg_gemv_k2_g2", "upg_gemv_k2_g4", "upg_gemv_k3_g1", "upg_gemv_k3_g2"} {
		kernelSig[k+"_t2"] = gemvSig + " ws:p cnt:p ssq:p"
		kernelSig[k+"_t1r"] = gemvSig + " ws:p cnt:p ssq:p " + gemvRopeSig
	}
	for _, k := range []string{"upg_gemv_k2_g1", "upg_gemv_k3_g1"} {
		kernelSig[k+"_t1q"] = gemvSig + " ws:p cnt:p ssq:p " + gemvRopeSig + " " + gemvSelfQSig
	}
	kernelSig["upg_splitk_sum"] = "part:p S:i y:p res:p N:i"
	const trellisSig = "tiles:p scales:p vtab:p xr:p y:p R:i C:i TC:i G:i gst:i nt:i res:p"
	for _, k := range []string{"k2", "k3", "k4"} {
		kernelSig["upg_gemv_trellis_"+k+"_t1"] = trellisSig
		kernelSig["upg_gemv_trellis_"+k+"_t8"] = trellisSig
		kernelSig["upg_gemm_trellis_"+k] = trellisSig
		kernelSig["upg_gemm_trellis_bf64_"+k] = trellisSig
		kernelSig["upg_gemm_trellis_bf128_"+k] = trellisSig
		kernelSig["upg_gemv_trellis1_"+k] = "tiles:p scales:p levels:p xr:p y:p R:i C:i TC:i G:i gst:i tpl:i res:p"
	}
	kernelSig["upg_embed_trellis"] = "tiles:p scales:p vtab:p signs:p tokens:p dst:p C:i TC:i G:i gs:i K:i rb:i seg:i"
	const sparseSig = "mask:p mw:i codes:p cw:i scales:p G:i gmagic:u gword:i levels:p k:i"
	kernelSig["upg_gemv_sparse_t1"] = sparseSig + " x:p ldx:i y:p R:i C:i nt:i"
	kernelSig["upg_gemv_sparse_t8"] = sparseSig + " x:p ldx:i y:p R:i C:i nt:i"
	kernelSig["upg_embed_sparse"] = sparseSig + " tokens:p dst:p C:i"
	kernelSig["upg_pstep"] = "prm:p" // experiments/pstep.cu (pstep.go): experimentKernels
	kernelSig["upg_rotq"] = "x:p ldx:i signs:p rb:i gs:i seg:i C:i G:i alpha:f beta:f xr:p xq:p ldq:i fac:p"
	kernelSig["upg_overlay"] = "idx:p vals:p K:i xr:p y:p R:i C:i n:i"
	kernelSig["upg_gemv_f16"] = "w:p ldw:i x:p ldx:i y:p R:i C:i nt:i"
	kernelSig["upg_readbw"] = "p:p n:l out:p"
	kernelSig["upg_embed_dense"] = "codes:p scales:p offs:p levels:p signs:p tokens:p dst:p C:i U:i G:i gsl:i K:i rb:i seg:i"
	kernelSig["upg_embed_f16"] = "w:p ldw:i tokens:p dst:p C:i"
	kernelSig["upg_rmsnorm"] = "dst:p x:p w:p eps:f d:i rows:p"
	kernelSig["upg_add"] = "dst:p src:p n:i"
	kernelSig["upg_bias"] = "x:p b:p width:i n:i"
	kernelSig["upg_rope"] = "x:p stride:i hd:i dim:i interleave:i cosT:p sinT:p pos:p"
	kernelSig["upg_store_kv_f16"] = "kc:p vc:p k:p ks:i v:p vs:i slots:p H:i hd:i bs:i"
	kernelSig["upg_store_kv_f32"] = kernelSig["upg_store_kv_f16"]
	kernelSig["upg_attn_f16"] = "q:p qs:i kc:p vc:p tables:p tstride:i pos:p seq:p scale:f heads:i H:i hd:i bs:i chunk:i S:i part:p"
	kernelSig["upg_attn_f32"] = kernelSig["upg_attn_f16"]
	for _, g := range []string{"2", "4", "8"} {
		kernelSig["upg_attn_gqa"+g+"_f16"] = kernelSig["upg_attn_f16"]
		kernelSig["upg_attn_gqa"+g+"_f32"] = kernelSig["upg_attn_f16"]
		kernelSig["upg_attn_gqa"+g+"_tc"] = kernelSig["upg_attn_f16"] + " shared:p cascade:i"
		for _, hd := range []string{"64", "128"} {
			kernelSig["upg_attn_cascade_gqa"+g+"_h"+hd] = "q:p qs:i kc:p vc:p tables:p tstride:i pos:p seq:p scale:f heads:i H:i bs:i S:i part:p shared:p n:i"
		}
	}
	kernelSig["upg_attn_prefill_f16"] = "q:p qs:i kc:p vc:p tables:p tstride:i pos:p seq:p scale:f heads:i H:i hd:i bs:i n:i dst:p"
	kernelSig["upg_attn_prefill_f32"] = kernelSig["upg_attn_prefill_f16"]
	kernelSig["upg_attn_prefill_tc64"] = kernelSig["upg_attn_prefill_f16"]
	kernelSig["upg_attn_prefill_tc128"] = kernelSig["upg_attn_prefill_f16"]
	kernelSig["upg_attn_combine"] = "part:p pos:p chunk:i S:i heads:i hd:i dst:p"
	kernelSig["upg_swiglu"] = "dst:p gate:p gs:i up:p us:i width:i n:i"
	kernelSig["upg_argmax"] = "x:p vocab:i out:p cnt:p part:p P:i"
	kernelSig["upg_sample"] = "logits:p vocab:i rows:p hist:p hsave:p out_tok:p out_lp:p"
	const rotqTail = " signs:p rb:i gs:i seg:i C:i G:i alpha:f beta:f xr:p xq:p ldq:i fac:p"
	kernelSig["upg_rms_rotq"] = "x:p w:p eps:f h:p" + rotqTail
	kernelSig["upg_swiglu_rotq"] = "gate:p gstr:i up:p ustr:i S:i N:l act:p" + rotqTail
	kernelSig["upg_combine_rotq"] = "part:p pos:p chunk:i S:i heads:i hd:i dst:p" + rotqTail
	kernelSig["upg_attn_rotq_f16"] = kernelSig["upg_attn_f16"] + " dst:p" + rotqTail + " cnt:p"
	kernelSig["upg_attn_rotq_f32"] = kernelSig["upg_attn_rotq_f16"]
	for _, k := range []string{"f16_h128", "f16_h64", "f32_h128", "f32_h64"} {
		kernelSig["upg_attn_cluster_rotq_"+k] = "q:p qs:i kc:p vc:p tables:p tstride:i pos:p seq:p scale:f heads:i H:i bs:i dst:p" +
			" signs:p rb:i gs:i C:i G:i alpha:f beta:f xr:p xq:p ldq:i fac:p"
	}
	kernelSig["upg_rope_kv_f16"] = "q:p qs:i heads:i k:p ks:i v:p vs:i kc:p vc:p slots:p H:i hd:i bs:i dim:i interleave:i cosT:p sinT:p pos:p"
	kernelSig["upg_rope_kv_f32"] = kernelSig["upg_rope_kv_f16"]
	kernelSig["upg_splitk_rope_kv_f16"] = "part:p S:i y:p heads:i H:i hd:i kc:p vc:p slots:p bs:i interleave:i cosT:p sinT:p pos:p n:i"
	kernelSig["upg_splitk_rope_kv_f32"] = kernelSig["upg_splitk_rope_kv_f16"]
	for n, s := range kernelSig {
		kernelKinds[n] = sigKinds(s)
	}
}

// sigKinds returns the kinds of a signature, one byte per parameter.
func sigKinds(sig string) []byte {
	var k []byte
	for _, f := range strings.Fields(sig) {
		k = append(k, f[len(f)-1])
	}
	return k
}
