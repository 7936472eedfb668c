package model

// FinalNorm applies the output RMSNorm to n hidden states (the input of the
// output head).
func (m *Model) FinalNorm(dst, x []float32, n int) {
	d := m.Config.Hidden
	for i := range n {
		rmsNorm(dst[i*d:(i+1)*d], x[i*d:(i+1)*d], m.Weights.Norm, float32(m.Config.NormEps))
	}
}
