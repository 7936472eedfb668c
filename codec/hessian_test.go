package codec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomSPD returns a cols×cols symmetric positive definite matrix with
// correlated columns, as calibration Hessians are.
func randomSPD(r *rand.Rand, cols, samples int) []float64 {
	h := make([]float64, cols*cols)
	x := make([]float64, cols)
	for range samples {
		for j := range x {
			x[j] = r.NormFloat64() + 0.5*x[(j+cols-1)%cols]
		}
		for i := range x {
			for j := range x {
				h[i*cols+j] += x[i] * x[j] / float64(samples)
			}
		}
	}
	return h
}

// TestFillHessianRotates: fillHessian's rows-transpose-rows rotation is
// Q·H·Qᵀ by its definition (Q's columns the rotated unit vectors, then two
// plain products), the padding an identity block, at widths whose
// rotation has one block, several, and crosses the transpose's 64-wide
// tiles.
func TestFillHessianRotates(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ cols, n int }{{64, 64}, {96, 100}, {160, 176}, {130, 130}} {
		cols, n := c.cols, c.n
		h := randomSPD(r, cols, 300)
		const seed = 0x5eed
		signs := RotationSigns(seed, cols)
		q := make([]float64, cols*cols) // q[i][j] = (Q e_j)_i
		e := make([]float64, cols)
		for j := 0; j < cols; j++ {
			clear(e)
			e[j] = 1
			rotateForward64(e, signs)
			for i := range e {
				q[i*cols+j] = e[i]
			}
		}
		want := make([]float64, cols*cols) // Q·H·Qᵀ
		for i := 0; i < cols; i++ {
			for j := 0; j < cols; j++ {
				var s float64
				for k := 0; k < cols; k++ {
					for l := 0; l < cols; l++ {
						s += q[i*cols+k] * h[k*cols+l] * q[j*cols+l]
					}
				}
				want[i*cols+j] = s
			}
		}
		for _, sd := range []uint64{0, seed} {
			a := make([]float64, n*n)
			for i := range a {
				a[i] = math.NaN() // every entry must be written
			}
			fillHessian(a, n, h, cols, sd)
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					var w float64
					switch {
					case i < cols && j < cols && sd == 0:
						w = h[i*cols+j]
					case i < cols && j < cols:
						w = want[i*cols+j]
					case i == j:
						w = 1
					}
					if got := a[i*n+j]; !(math.Abs(got-w) <= 1e-12*(1+math.Abs(w))) {
						t.Fatalf("cols %d n %d seed %#x: [%d][%d] = %g, want %g", cols, n, sd, i, j, got, w)
					}
				}
			}
		}
	}
}

// TestPrepareHessianFactor: prepareHessian's U is upper triangular with
// Uᵀ·U = (H + λI)⁻¹ (λ = damp·mean(diag H), a dead column's diagonal 1 +
// λ), Ucc its diagonal and Imp the dampened diagonal; a matrix that is not
// positive definite gets ten times the dampening until it is.
func TestPrepareHessianFactor(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n = 150 // crosses the factorisation's 96-wide panels
	h := randomSPD(r, n, 400)
	for j := 0; j < n; j++ { // column 7 dead
		h[7*n+j], h[j*n+7] = 0, 0
	}
	var mean float64
	for i := 0; i < n; i++ {
		mean += h[i*n+i]
	}
	mean /= n
	check := func(name string, damp float64, fill func([]float64), lambda float64) {
		p, err := prepareHessian(n, damp, fill)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		hd := make([]float64, n*n)
		fill(hd)
		for i := 0; i < n; i++ {
			if hd[i*n+i] <= 0 {
				hd[i*n+i] = 1
			}
			hd[i*n+i] += lambda
			if got := float64(p.Imp[i]); math.Abs(got-hd[i*n+i]) > 1e-6*hd[i*n+i] {
				t.Fatalf("%s: Imp[%d] = %g, want %g", name, i, got, hd[i*n+i])
			}
			if p.Ucc[i] != p.U[i*n+i] {
				t.Fatalf("%s: Ucc[%d] = %g, U's diagonal %g", name, i, p.Ucc[i], p.U[i*n+i])
			}
			for j := 0; j < i; j++ {
				if p.U[i*n+j] != 0 {
					t.Fatalf("%s: U[%d][%d] = %g below the diagonal", name, i, j, p.U[i*n+j])
				}
			}
		}
		// (Uᵀ·U)·(H + λI) = I
		inv := make([]float64, n*n)
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for k := 0; k <= min(i, j); k++ {
					s += float64(p.U[k*n+i]) * float64(p.U[k*n+j])
				}
				inv[i*n+j] = s
			}
		}
		var worst float64
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for k := 0; k < n; k++ {
					s += inv[i*n+k] * hd[k*n+j]
				}
				if i == j {
					s--
				}
				worst = max(worst, math.Abs(s))
			}
		}
		if worst > 1e-4 { // U is float32
			t.Errorf("%s: |Uᵀ·U·(H+λI) − I| = %g", name, worst)
		}
	}
	check("positive definite", 0.01, func(a []float64) { copy(a, h) }, 0.01*mean)
	// columns 2 and 3 correlated past what any H can be (|h23| = 3·√(h22·h33)):
	// indefinite until λ > ~2·mean, i.e. the dampening 0.01 → 0.1 → 1 → 10
	fills := 0
	bad := func(a []float64) {
		fills++
		copy(a, h)
		v := 3 * math.Sqrt(h[2*n+2]*h[3*n+3])
		a[2*n+3], a[3*n+2] = v, v
	}
	if _, err := prepareHessian(n, 0.01, bad); err != nil {
		t.Fatalf("indefinite H: %v", err)
	}
	if fills != 4 {
		t.Fatalf("indefinite H factorised after %d fills, want 4 (dampening 10)", fills)
	}
	check("indefinite, dampened", 10, bad, 10*mean)
}

// TestTransposeSquare: in place, across the 64-wide tiles, with a leading
// dimension past the block and the entries beyond it untouched.
func TestTransposeSquare(t *testing.T) {
	const m, ld = 131, 140
	a := make([]float64, m*ld)
	for i := range a {
		a[i] = float64(i)
	}
	transposeSquare(a, m, ld)
	for i := 0; i < m; i++ {
		for j := 0; j < ld; j++ {
			want := float64(i*ld + j)
			if j < m {
				want = float64(j*ld + i)
			}
			if a[i*ld+j] != want {
				t.Fatalf("[%d][%d] = %g, want %g", i, j, a[i*ld+j], want)
			}
		}
	}
}
