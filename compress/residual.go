package compress

import (
	"fmt"
	"math"
	"sync"

	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
)

// ResidualForm is the residual stream's form in a compressed file
// (Options.Residual).
type ResidualForm int

const (
	// ResidualPlain keeps the checkpoint's residual stream.
	ResidualPlain ResidualForm = iota
	// ResidualRotated rewrites the model with a rotated residual stream;
	// a model that cannot take it is an error.
	ResidualRotated
	// ResidualAuto rotates the stream where the model can take it (a head
	// of its own, not tied to the embedding, and a hidden size whose
	// Hadamard blocks hold at least 16 values) and keeps it plain
	// otherwise, with a log line.
	ResidualAuto
)

// ResidualFor is the form a caller's rotate-residual choice asks for: nil
// (not given) ResidualAuto, true ResidualRotated, false ResidualPlain.
func ResidualFor(rotate *bool) ResidualForm {
	switch {
	case rotate == nil:
		return ResidualAuto
	case *rotate:
		return ResidualRotated
	}
	return ResidualPlain
}

// ResidualSeed is the seed of the residual stream's rotation
// (Options.Residual): the same signs as the codecs' input rotation
// (Ladder), so a matrix that reads the stream is stored rotated exactly as
// it would have been with its own rotation, less the norm's gain.
const ResidualSeed = 0x5eed

// The rotated residual stream (QuaRot's construction, Ashkboos et al.
// 2024). With Q = H·D orthogonal (the codecs' block-Hadamard rotation with
// ResidualSeed's signs over the hidden width), the model is rewritten into
// an equivalent one whose residual stream is Q·x instead of x:
//
//   - the embedding's rows are rotated: E' = E·Qᵀ (row t is Q·e_t);
//   - each RMSNorm loses its gain g (g ← 1): RMSNorm(Q·x) = Q·(x/rms(x))
//     because Q preserves the norm, and the gain moves into the matrices
//     that read the norm's output, which also undo the rotation:
//     W' = W·diag(g)·Qᵀ (q/k/v, gate/up, the output head);
//   - the matrices that write the stream rotate their output: W' = Q·W
//     (o_proj, down_proj).
//
// Every logit is unchanged (up to float rounding). What it buys is that
// the matrices reading the stream need no rotation of their input at run
// time (the planner gives them codecs with Rotate = 0: their weights are
// already in the rotated basis, as incoherent as the per-matrix rotation
// makes them), so the norms become plain RMSNorms and a fused step has no
// Hadamard stages between the residual and q/k/v or gate/up
// (backend/cuda/NOTES.md, run 197: 6 µs of a persistent step's 36 µs
// chain a layer are rotations). o_proj and down_proj keep their own input
// rotation. A tied embedding cannot take it (the head would need the final
// norm's gain and the embedding not), so tied models are refused.

// residualRoles classifies a checkpoint's tensors for the rotation.
type residualRoles struct {
	gain    map[string]string // matrix that reads a norm's output → that norm's tensor
	writers map[string]bool   // matrices that add into the stream (rows rotated)
	embed   string            // the embedding (rows rotated, no gain)
	norms   map[string]bool   // norm gains, replaced by ones
}

func newResidualRoles(cfg *model.Config, src model.TensorSource) (*residualRoles, error) {
	if cfg.TieEmbeddings || !src.Has("lm_head.weight") || !src.Has("model.embed_tokens.weight") {
		return nil, fmt.Errorf("--rotate-residual needs a separate output head (lm_head.weight) and embedding: this model ties them")
	}
	if codec.RotationBlock(cfg.Hidden) < 16 {
		return nil, fmt.Errorf("--rotate-residual: hidden size %d has Hadamard blocks of %d; at least 16 are needed for the rotation to spread outliers", cfg.Hidden, codec.RotationBlock(cfg.Hidden))
	}
	r := &residualRoles{gain: map[string]string{}, writers: map[string]bool{}, norms: map[string]bool{},
		embed: "model.embed_tokens.weight"}
	r.gain["lm_head.weight"] = "model.norm.weight"
	r.norms["model.norm.weight"] = true
	for i := range cfg.Layers {
		p := model.LayerPrefix(i)
		// the compressor's stages: the attention's and the FFN's inputs are
		// the norms' outputs, o's and down's outputs go into the stream
		norm := map[model.TapPoint]string{model.TapAttnIn: p + "input_layernorm.weight", model.TapFFNIn: p + "post_attention_layernorm.weight"}
		for _, st := range layerStages(src.Has, i) {
			for _, s := range st.names {
				if n, ok := norm[st.tap]; ok {
					r.gain[p+s], r.norms[n] = n, true
				} else {
					r.writers[p+s] = true
				}
			}
		}
	}
	for n := range r.norms {
		if !src.Has(n) {
			return nil, fmt.Errorf("--rotate-residual: the checkpoint has no %s", n)
		}
	}
	return r, nil
}

// readsStream reports whether name is a matrix whose input is the rotated
// stream's norm (its codec must not rotate again).
func (r *residualRoles) readsStream(name string) bool { _, ok := r.gain[name]; return ok }

// rotatedSource is a checkpoint.Source presenting the rotated model
// (residualRoles) of the source it wraps. Matrices that read the stream and
// the embedding are rotated row by row as they are decoded; the writers
// (whose rows mix) are computed whole on first use and kept until Release.
type rotatedSource struct {
	checkpoint.Source
	roles  *residualRoles
	signs  []float32 // D over the hidden width
	hidden int

	mu    sync.Mutex
	whole map[string][]float32 // rotated writers, dropped by Release
}

func newRotatedSource(cfg *model.Config, src checkpoint.Source) (*rotatedSource, error) {
	roles, err := newResidualRoles(cfg, src)
	if err != nil {
		return nil, err
	}
	return &rotatedSource{Source: src, roles: roles, hidden: cfg.Hidden,
		signs: codec.RotationSigns(ResidualSeed, cfg.Hidden), whole: map[string][]float32{}}, nil
}

// Vector returns ones for the norm gains (folded into their readers).
func (s *rotatedSource) Vector(name string) ([]float32, error) {
	v, err := s.Source.Vector(name)
	if err != nil || !s.roles.norms[name] {
		return v, err
	}
	for i := range v {
		v[i] = 1
	}
	return v, nil
}

// Matrix returns the rotated form of name's matrix (the source's own for
// matrices the rotation does not touch).
func (s *rotatedSource) Matrix(name string) (tensor.Matrix, error) {
	m, err := s.Source.Matrix(name)
	if err != nil {
		return nil, err
	}
	if gname, ok := s.roles.gain[name]; ok || name == s.roles.embed {
		if m.Cols() != s.hidden {
			return nil, fmt.Errorf("%s has %d columns, the hidden size is %d", name, m.Cols(), s.hidden)
		}
		var g []float32
		if ok {
			if g, err = s.Source.Vector(gname); err != nil {
				return nil, err
			}
			if len(g) != s.hidden {
				return nil, fmt.Errorf("%s has %d values, the hidden size is %d", gname, len(g), s.hidden)
			}
		}
		return &rowRotated{src: m, gain: g, s: s}, nil
	}
	if s.roles.writers[name] {
		if m.Rows() != s.hidden {
			return nil, fmt.Errorf("%s has %d rows, the hidden size is %d", name, m.Rows(), s.hidden)
		}
		return &outRotated{src: m, name: name, s: s}, nil
	}
	return m, nil
}

// Release drops the rotated writers and releases the source's pages.
func (s *rotatedSource) Release() {
	s.mu.Lock()
	clear(s.whole)
	s.mu.Unlock()
	if r, ok := s.Source.(interface{ Release() }); ok {
		r.Release()
	}
}

// rowRotated is W·diag(gain)·Qᵀ (gain nil: W·Qᵀ): each row scaled and
// rotated on its own.
type rowRotated struct {
	src  tensor.Matrix
	gain []float32
	s    *rotatedSource
}

func (m *rowRotated) Rows() int { return m.src.Rows() }
func (m *rowRotated) Cols() int { return m.src.Cols() }

func (m *rowRotated) DecodeRows(dst []float32, r0, r1 int) {
	m.src.DecodeRows(dst, r0, r1)
	C := m.src.Cols()
	for r := range r1 - r0 {
		row := dst[r*C : (r+1)*C]
		if m.gain != nil {
			for j, g := range m.gain {
				row[j] *= g
			}
		}
		codec.RotateForward(row, m.s.signs)
	}
}

// outRotated is Q·W: column j is Q·W[:, j], so its rows mix within each
// Hadamard block of rows. The whole matrix is computed once and kept in
// the source until Release (a whole-matrix decode computes in place).
type outRotated struct {
	src  tensor.Matrix
	name string
	s    *rotatedSource
}

func (m *outRotated) Rows() int { return m.src.Rows() }
func (m *outRotated) Cols() int { return m.src.Cols() }

func (m *outRotated) DecodeRows(dst []float32, r0, r1 int) {
	R, C := m.src.Rows(), m.src.Cols()
	if r0 == 0 && r1 == R {
		m.s.mu.Lock()
		w := m.s.whole[m.name]
		m.s.mu.Unlock()
		if w != nil {
			copy(dst, w)
			return
		}
		m.src.DecodeRows(dst[:R*C], 0, R)
		m.rotateRows(dst[:R*C])
		return
	}
	m.s.mu.Lock()
	w := m.s.whole[m.name]
	if w == nil {
		w = make([]float32, R*C)
		m.src.DecodeRows(w, 0, R)
		m.rotateRows(w)
		m.s.whole[m.name] = w
	}
	m.s.mu.Unlock()
	copy(dst[:(r1-r0)*C], w[r0*C:r1*C])
}

// rotateRows computes W ← Q·W = H·(D·W) in place for a row-major R×C
// matrix: each row scaled by its sign, then the Hadamard butterflies
// across rows within each block of RotationBlock(R) rows, a whole row at a
// time (the same stage order and scaling as tensor.FWHT on each column).
func (m *outRotated) rotateRows(w []float32) {
	R, C := m.src.Rows(), m.src.Cols()
	for r := range R {
		if m.s.signs[r] < 0 {
			for j, v := range w[r*C : (r+1)*C] {
				w[r*C+j] = -v
			}
		}
	}
	n := codec.RotationBlock(R)
	scale := float32(1 / math.Sqrt(float64(n)))
	for b := 0; b < R; b += n {
		for h := 1; h < n; h *= 2 {
			for i := b; i < b+n; i += 2 * h {
				for r := i; r < i+h; r++ {
					x, y := w[r*C:(r+1)*C], w[(r+h)*C:(r+h+1)*C]
					for j := range x {
						a, c := x[j], y[j]
						x[j], y[j] = a+c, a-c
					}
				}
			}
		}
	}
	for i := range w {
		w[i] *= scale
	}
}
