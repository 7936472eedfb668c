// The exported functions (cgo); see doc.go.

package main

/*
#include <stdint.h>
#include <stdlib.h>
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/upg-ai/upg/cli"
	"github.com/upg-ai/upg/compress"
)

// fail stores err's message in *errOut and returns its code.
func fail(errOut **C.char, err error, fallback int) C.int32_t {
	code := classify(err, fallback)
	if errOut != nil {
		*errOut = C.CString(err.Error())
	}
	return C.int32_t(code)
}

// guard turns a panic of the calling goroutine into an error.
func guard(rc *C.int32_t, errOut **C.char) {
	if p := recover(); p != nil {
		*rc = fail(errOut, fmt.Errorf("internal error: %v\n%s", p, debug.Stack()), codeError)
	}
}

// cstring returns s as a C string of known length (it may hold NULs).
func cstring(s string, out **C.char, outLen *C.int64_t) {
	*out = (*C.char)(C.CBytes(append([]byte(s), 0)))
	if outLen != nil {
		*outLen = C.int64_t(len(s))
	}
}

func decodeJSON(s *C.char, v any, what string) error {
	if s == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(C.GoString(s)), v); err != nil {
		return argErrorf("%s: %v", what, err)
	}
	return nil
}

func encodeJSON(v any, out **C.char) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	cstring(string(b), out, nil)
	return nil
}

//export upg_free
func upg_free(p unsafe.Pointer) { C.free(p) }

// upg_version writes the library's version (the compressor's) as a string.
//
//export upg_version
func upg_version(out **C.char) C.int32_t {
	cstring(compress.Version, out, nil)
	return codeOK
}

// upg_model_load loads a model (.upg, GGUF or Hugging Face directory) with
// options {"device","gpu_layers","ctx","threads","kv_cache","lookup"} (JSON,
// may be NULL). A GPU that cannot be used fails with UPG_ERR_DEVICE (9).
//
//export upg_model_load
func upg_model_load(path, optsJSON *C.char, out *C.uint64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	var o loadOptions
	if err := decodeJSON(optsJSON, &o, "model options"); err != nil {
		return fail(errOut, err, codeArgument)
	}
	m, err := loadModel(C.GoString(path), o)
	if err != nil {
		return fail(errOut, err, codeFormat)
	}
	*out = C.uint64_t(newHandle(m))
	return codeOK
}

// upg_model_info writes a JSON object describing the model (vocab_size,
// ctx, chat_template, ...).
//
//export upg_model_info
func upg_model_info(h C.uint64_t, out **C.char, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	m, err := lookup[*modelObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	info, err := m.info()
	if err != nil {
		return fail(errOut, err, codeError)
	}
	if err := encodeJSON(info, out); err != nil {
		return fail(errOut, err, codeError)
	}
	return codeOK
}

// upg_model_free cancels the model's generations, waits for the one
// running to stop, and unloads the model. The handle is invalid afterwards.
//
//export upg_model_free
func upg_model_free(h C.uint64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	m, err := release[*modelObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	if err := m.close(); err != nil {
		return fail(errOut, err, codeError)
	}
	return codeOK
}

// upg_tokenize tokenizes text (textLen bytes). It writes at most capacity
// ids into out and their number into *n; if they do not fit it returns
// UPG_ERR_TOO_SMALL (8) with the number needed in *n.
//
//export upg_tokenize
func upg_tokenize(h C.uint64_t, text *C.char, textLen C.int64_t, addSpecial, parseSpecial C.int32_t,
	out *C.int32_t, capacity C.int64_t, n *C.int64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	m, err := lookup[*modelObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	ids, err := m.tokenize(C.GoStringN(text, C.int(textLen)), addSpecial != 0, parseSpecial != 0)
	if err != nil {
		return fail(errOut, err, codeError)
	}
	*n = C.int64_t(len(ids))
	if int64(len(ids)) > int64(capacity) {
		return fail(errOut, &apiError{codeTooSmall, fmt.Errorf("%d token ids do not fit a buffer of %d", len(ids), capacity)}, codeError)
	}
	if len(ids) > 0 {
		dst := unsafe.Slice((*int32)(unsafe.Pointer(out)), len(ids))
		for i, id := range ids {
			dst[i] = int32(id)
		}
	}
	return codeOK
}

// upg_detokenize renders n token ids as text (*out, *outLen bytes).
//
//export upg_detokenize
func upg_detokenize(h C.uint64_t, ids *C.int32_t, n C.int64_t, out **C.char, outLen *C.int64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	m, err := lookup[*modelObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	var v []int32
	if n > 0 {
		v = unsafe.Slice((*int32)(unsafe.Pointer(ids)), int(n))
	}
	s, err := m.detokenize(v)
	if err != nil {
		return fail(errOut, err, codeError)
	}
	cstring(s, out, outLen)
	return codeOK
}

// upg_logits runs n token ids from an empty float32 cache and writes the
// logits of the last position (all = 0: vocab_size floats) or of every
// position (all != 0: n × vocab_size floats, row-major) into out, which
// holds capacity floats.
//
//export upg_logits
func upg_logits(h C.uint64_t, ids *C.int32_t, n C.int64_t, all C.int32_t, out *C.float, capacity C.int64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	m, err := lookup[*modelObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	var v []int32
	if n > 0 {
		v = unsafe.Slice((*int32)(unsafe.Pointer(ids)), int(n))
	}
	var dst []float32
	if capacity > 0 {
		dst = unsafe.Slice((*float32)(unsafe.Pointer(out)), int(capacity))
	}
	if err := m.logits(v, all != 0, dst); err != nil {
		return fail(errOut, err, codeError)
	}
	return codeOK
}

// upg_gen_start starts a generation described by JSON: one of "prompt"
// (text), "messages" ([{"role","content"}], rendered with the model's chat
// template) or "ids"; "max_tokens", "temperature", "top_k", "top_p",
// "min_p", "repeat_penalty", "frequency_penalty", "presence_penalty",
// "logit_bias" ({"id": bias}), "seed", "stop" ([...]), "ignore_eos",
// "format" ("json": one JSON object) (absent ones take upg run's
// defaults). Poll it with upg_gen_next.
//
//export upg_gen_start
func upg_gen_start(h C.uint64_t, reqJSON *C.char, out *C.uint64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	m, err := lookup[*modelObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	var r genRequest
	if err := decodeJSON(reqJSON, &r, "generation request"); err != nil {
		return fail(errOut, err, codeArgument)
	}
	g, err := m.startGen(r)
	if err != nil {
		return fail(errOut, err, codeError)
	}
	*out = C.uint64_t(newHandle(g))
	return codeOK
}

// upg_gen_next runs the generation on the calling thread and copies its
// next text into buf (at most capacity bytes, never splitting a UTF-8
// character unless capacity is smaller than one), its length into *n.
// With maxPieces > 0 it returns once it has that many pieces of text (1:
// streaming); with maxPieces 0 it collects text until the generation ends.
// Either way it returns when buf is full or timeoutMs has passed (after the
// step then running), also while it waits for another generation on the
// same model to end; *n may then be 0. *finished becomes 1 once the
// generation has ended and all its text was returned (this call's text
// included); a failed generation returns its error then.
//
//export upg_gen_next
func upg_gen_next(h C.uint64_t, timeoutMs C.int32_t, maxPieces C.int32_t, buf *C.char, capacity C.int64_t,
	n *C.int64_t, finished *C.int32_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	g, err := lookup[*genObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	if capacity <= 0 {
		return fail(errOut, argErrorf("buffer capacity %d", capacity), codeError)
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(capacity))
	k, fin, err := g.next(time.Duration(timeoutMs)*time.Millisecond, int(maxPieces), dst)
	*n = C.int64_t(k)
	*finished = 0
	if fin {
		*finished = 1
	}
	if err != nil {
		return fail(errOut, err, codeError)
	}
	return codeOK
}

// upg_gen_stats writes a finished generation's statistics as JSON
// (prompt_tokens, generated_tokens, prefill_tok_s, decode_tok_s,
// stop_reason: "eos", "stop", "length", "context" or "cancelled",
// lookup_drafted, lookup_accepted, ...).
//
//export upg_gen_stats
func upg_gen_stats(h C.uint64_t, out **C.char, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	g, err := lookup[*genObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	st, err := g.finishedStats()
	if err != nil {
		return fail(errOut, err, codeError)
	}
	if err := encodeJSON(st, out); err != nil {
		return fail(errOut, err, codeError)
	}
	return codeOK
}

// upg_gen_cancel asks a generation to stop (safe from any thread, at any
// time, also during upg_gen_next); it ends after the step it is in, with
// stop reason "cancelled".
//
//export upg_gen_cancel
func upg_gen_cancel(h C.uint64_t) C.int32_t {
	g, err := lookup[*genObj](uint64(h))
	if err != nil {
		return C.int32_t(classify(err, codeError))
	}
	g.cancel()
	return codeOK
}

// upg_gen_free ends the generation (waiting for a upg_gen_next in
// progress, which returns after its current step) and forgets the handle.
//
//export upg_gen_free
func upg_gen_free(h C.uint64_t) C.int32_t {
	g, err := release[*genObj](uint64(h))
	if err != nil {
		return C.int32_t(classify(err, codeError))
	}
	g.release()
	return codeOK
}

// upg_batch_start starts generating several requests together on one
// model: JSON {"requests": [...]}, each request as upg_gen_start's. Up to
// the model's max_batch (upg_model_load) run at a time, the others joining
// as those finish; it waits for another generation on the model to end
// first. Poll it with upg_job_wait (done and total count generated tokens
// against the most the requests may still generate); its result is
// {"results": [{"text", "stats"}] in the requests' order, "generated_tokens",
// "seconds", "tok_s", "max_running", "preemptions"}.
//
//export upg_batch_start
func upg_batch_start(h C.uint64_t, reqJSON *C.char, job *C.uint64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	m, err := lookup[*modelObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	var r batchRequest
	if err := decodeJSON(reqJSON, &r, "batch request"); err != nil {
		return fail(errOut, err, codeArgument)
	}
	j, err := m.startBatch(r)
	if err != nil {
		return fail(errOut, err, codeError)
	}
	*job = C.uint64_t(newHandle(j))
	return codeOK
}

// upg_compress_start starts compressing src into out with options (JSON)
// {"target_bpw" or "target_size" (bytes, or with a unit: "9.4MB"), "calib"
// (a file) or "calib_text", "calib_tokens", "calib_ctx", "codec",
// "no_gptq", "threads", "token_weights", "output_targets",
// "rotate_residual"}. Poll it with upg_job_wait;
// its result is the report `upg compress --json` prints.
//
//export upg_compress_start
func upg_compress_start(src, out, optsJSON *C.char, job *C.uint64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	var o compressOptions
	if err := decodeJSON(optsJSON, &o, "compress options"); err != nil {
		return fail(errOut, err, codeArgument)
	}
	j, err := startCompress(C.GoString(src), C.GoString(out), o)
	if err != nil {
		return fail(errOut, err, codeError)
	}
	*job = C.uint64_t(newHandle(j))
	return codeOK
}

// upg_evaluate_start starts scoring a model as `upg eval` does, with
// options (JSON) {"model", "ref", "compare", "text" or "text_file", "ctx",
// "threads", "kv_cache" (the scored models': "f32" by default, "f16", "q8"),
// "device", "gpu_layers" (as upg_model_load's), "ref_device" (the
// reference's, default "device")}. Its result is a JSON list of the objects
// `upg eval --json` prints, one per model.
//
//export upg_evaluate_start
func upg_evaluate_start(optsJSON *C.char, job *C.uint64_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	var o evalOptions
	if err := decodeJSON(optsJSON, &o, "evaluate options"); err != nil {
		return fail(errOut, err, codeArgument)
	}
	j, err := startEvaluate(o)
	if err != nil {
		return fail(errOut, err, codeError)
	}
	*job = C.uint64_t(newHandle(j))
	return codeOK
}

// upg_job_wait waits up to timeoutMs for a job to finish and reports its
// progress: done and total (in the job's units), the number of progress
// updates so far, its stage (into stage, capacity bytes, NUL-ended), and
// whether it has finished.
//
//export upg_job_wait
func upg_job_wait(h C.uint64_t, timeoutMs C.int32_t, done, total, updates *C.int64_t, stage *C.char, capacity C.int64_t,
	finished *C.int32_t, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	j, err := lookup[*jobObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	st := j.wait(time.Duration(timeoutMs) * time.Millisecond)
	*done, *total, *updates = C.int64_t(st.Done), C.int64_t(st.Total), C.int64_t(st.Updates)
	*finished = 0
	if st.Finished {
		*finished = 1
	}
	if capacity > 0 {
		dst := unsafe.Slice((*byte)(unsafe.Pointer(stage)), int(capacity))
		k := copy(dst[:capacity-1], st.Stage)
		dst[k] = 0
	}
	return codeOK
}

// upg_job_result writes a finished job's result (JSON), or returns its
// error.
//
//export upg_job_result
func upg_job_result(h C.uint64_t, out **C.char, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	j, err := lookup[*jobObj](uint64(h))
	if err != nil {
		return fail(errOut, err, codeError)
	}
	res, err := j.outcome()
	if err != nil {
		return fail(errOut, err, codeError)
	}
	cstring(string(res), out, nil)
	return codeOK
}

// upg_job_cancel asks a job to stop at its next progress report (a
// compression's output file is then not written).
//
//export upg_job_cancel
func upg_job_cancel(h C.uint64_t) C.int32_t {
	j, err := lookup[*jobObj](uint64(h))
	if err != nil {
		return C.int32_t(classify(err, codeError))
	}
	j.cancel.Store(true)
	return codeOK
}

// upg_job_free forgets a job's handle, cancelling it if it still runs.
//
//export upg_job_free
func upg_job_free(h C.uint64_t) C.int32_t {
	j, err := release[*jobObj](uint64(h))
	if err != nil {
		return C.int32_t(classify(err, codeError))
	}
	j.cancel.Store(true)
	return codeOK
}

// upg_inspect writes what `upg inspect --json` prints for path.
//
//export upg_inspect
func upg_inspect(path *C.char, out **C.char, errOut **C.char) (rc C.int32_t) {
	defer guard(&rc, errOut)
	p := C.GoString(path)
	if p == "" {
		return fail(errOut, argErrorf("no path given"), codeError)
	}
	v, err := cli.InspectJSON(p)
	if err != nil {
		return fail(errOut, err, codeFormat)
	}
	if err := encodeJSON(v, out); err != nil {
		return fail(errOut, err, codeError)
	}
	return codeOK
}
