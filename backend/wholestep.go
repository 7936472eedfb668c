package backend

// WholeStepper is a Backend that can run a whole one-token decode step of a
// plain decoder as one unit of work instead of the model's per-op calls:
// the CUDA backend's persistent step kernel (backend/cuda/pstep.go). The
// model offers it the step's weights and buffers once per context
// (BindWholeStep) and, where it accepts them, calls Run for steps of one
// token in place of every call after Embed, up to and including the head's
// MatMul. The step it runs must leave what those calls would: the
// residual in x, the keys and values in the cache, the logits row.
type WholeStepper interface {
	// BindWholeStep returns a WholeStep for m's weights and buffers, or
	// nil and why not (a shape, codec or device it does not take; the
	// per-op calls then run as before).
	BindWholeStep(m WholeStepModel) (WholeStep, string)
}

// WholeStep runs one-token decode steps of one model over one context's
// buffers (WholeStepper).
type WholeStep interface {
	// Run queues the step of s (one token, its logits row wanted) over kv,
	// after the Embed call that wrote the token's row into the bound x.
	Run(kv KV, s StepBuf)
	// Close releases what BindWholeStep allocated.
	Close()
}

// WholeStepModel is what a whole step reads and writes: a decoder whose
// layers are RMSNorm, a fused q|k|v projection with rotary embeddings on
// queries and keys, attention over the cache, o, the residual add,
// RMSNorm, a fused gate|up projection, SwiGLU, down, the residual add;
// then the final RMSNorm and the head.
type WholeStepModel struct {
	Layers                               []WholeStepLayer
	Norm, Output                         Weight
	Hidden, FFN, Heads, KVHeads, HeadDim int
	Eps, Scale                           float32 // RMSNorm's epsilon, attention's score scale
	Rope                                 Rope
	X, Logits                            Buffer // the residual row (Embed's output), the logits row
}

// WholeStepLayer is one layer's weights of a WholeStepModel.
type WholeStepLayer struct {
	AttnNorm, QKV, O, FFNNorm, GateUp, Down Weight
}
