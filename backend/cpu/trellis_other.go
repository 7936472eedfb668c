//go:build !amd64 && !arm64

package cpu

const hasTrellisAsm = false

type trellisArgs struct{}

type trellisI8Args struct{}

func trellisUmax(lv Level) int { return 0 }

func (b *Backend) trellisCall(ws *workerState, t, b0, nbands int, out *float32, outStride int) {
	panic("cpu: no trellis assembly kernel on this architecture")
}
