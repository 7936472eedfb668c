package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// kernels runs f once with each micro-kernel this machine has.
func kernels(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := active
	defer func() { active = saved }()
	for _, k := range available() {
		active = k
		t.Run(k.name, f)
	}
}

func randMat(r *rand.Rand, rows, cols int) []float64 {
	m := make([]float64, rows*cols)
	for i := range m {
		m[i] = r.NormFloat64()
	}
	return m
}

func TestMulAddMatchesNaive(t *testing.T) {
	kernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, sz := range [][3]int{{1, 1, 1}, {4, 8, 1}, {5, 9, 3}, {64, 64, 256}, {67, 130, 257}, {130, 67, 600}, {3, 200, 17}, {203, 203, 300}} {
			m, n, k := sz[0], sz[1], sz[2]
			for _, s := range []shape{{}, {bT: true}, {lowerC: true, bT: true}, {lowerB: true}, {aT: true}, {aT: true, upperC: true}, {lowerA: true}} {
				if (s.lowerC || s.upperC) && m != n || s.lowerB && n != k || s.lowerA && m != k {
					continue
				}
				lda, ldb, ldc := k+3, n+5, n+2
				if s.bT {
					ldb = k + 1
				}
				a := randMat(r, m, lda)
				av := func(i, kk int) float64 { return a[i*lda+kk] }
				if s.aT {
					lda = m + 2
					a = randMat(r, k, lda)
					av = func(i, kk int) float64 { return a[kk*lda+i] }
				}
				b := randMat(r, max(n, k), ldb)
				if s.lowerB { // the upper triangle is never read
					for kk := 0; kk < k; kk++ {
						for j := kk + 1; j < n; j++ {
							b[kk*ldb+j] = math.NaN()
						}
					}
				}
				if s.lowerA {
					for i := 0; i < m; i++ {
						for kk := i + 1; kk < k; kk++ {
							a[i*lda+kk] = math.NaN()
						}
					}
				}
				c := randMat(r, m, ldc)
				orig := append([]float64(nil), c...)
				want := append([]float64(nil), c...)
				const alpha = -0.75
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var sum float64
						for kk := 0; kk < k; kk++ {
							bv := b[kk*ldb+j]
							if s.bT {
								bv = b[j*ldb+kk]
							}
							if s.lowerB && kk < j || s.lowerA && kk > i {
								continue
							}
							sum += av(i, kk) * bv
						}
						want[i*ldc+j] += alpha * sum
					}
				}
				mulAdd(s, m, n, k, alpha, a, lda, b, ldb, c, ldc)
				name := fmt.Sprintf("%dx%dx%d %+v", m, n, k, s)
				for i := 0; i < m; i++ {
					for j := 0; j < ldc; j++ {
						got, w := c[i*ldc+j], want[i*ldc+j]
						if j >= n || s.lowerC && j > i || s.upperC && j < i {
							// outside C, or on the skipped side of its
							// diagonal: untouched outside the micro-tiles
							// on the diagonal
							mr, nr := active.mr, active.nr
							i0, j0 := i/mr*mr, j/nr*nr // the micro-tile's corner
							written := j < n && (s.lowerC && j0 <= i0+mr-1 || s.upperC && j0+nr-1 >= i0)
							if !written && got != orig[i*ldc+j] {
								t.Fatalf("%s: c[%d][%d] = %v written, want %v kept", name, i, j, got, orig[i*ldc+j])
							}
							continue
						}
						if math.Abs(got-w) > 1e-9*(1+math.Abs(w))*float64(k) {
							t.Fatalf("%s: c[%d][%d] = %v, want %v", name, i, j, got, w)
						}
					}
				}
			}
		}
	})
}

// spd returns a random symmetric positive definite n×n matrix (row-major,
// both triangles) with condition number in the hundreds.
func spd(r *rand.Rand, n int) []float64 {
	g := randMat(r, n, n)
	a := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			var s float64
			for k := 0; k < n; k++ {
				s += g[i*n+k] * g[j*n+k]
			}
			a[i*n+j], a[j*n+i] = s/float64(n), s/float64(n)
		}
		a[i*n+i] += 0.05
	}
	return a
}

func TestCholeskyAndInverse(t *testing.T) {
	kernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range []int{1, 2, 5, 95, 96, 97, 193, 300} {
			a := spd(r, n)
			lda := n + 7
			l := make([]float64, n*lda)
			for i := 0; i < n; i++ {
				copy(l[i*lda:i*lda+i+1], a[i*n:i*n+i+1])
				for j := i + 1; j < n; j++ {
					l[i*lda+j] = math.NaN() // never read
				}
			}
			if !Cholesky(l, n, lda) {
				t.Fatalf("n=%d: not positive definite", n)
			}
			// L·Lᵀ reproduces A (lower triangle of L only)
			for i := 0; i < n; i++ {
				for j := 0; j <= i; j++ {
					var s float64
					for k := 0; k <= j; k++ {
						s += l[i*lda+k] * l[j*lda+k]
					}
					if d := math.Abs(s - a[i*n+j]); d > 1e-10*(1+math.Abs(a[i*n+j])) {
						t.Fatalf("n=%d: (L·Lᵀ)[%d][%d] = %v, A = %v", n, i, j, s, a[i*n+j])
					}
				}
			}
			for i := 0; i < n; i++ { // the scratch above the diagonal: never read
				for j := i + 1; j < n; j++ {
					l[i*lda+j] = math.NaN()
				}
			}
			x, ldx := append([]float64(nil), l...), lda
			InvertLower(x, n, ldx)
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					var s float64
					for k := j; k <= i; k++ {
						s += x[i*ldx+k] * l[k*lda+j]
					}
					want := 0.0
					if i == j {
						want = 1
					}
					if j > i {
						if !math.IsNaN(x[i*ldx+j]) {
							t.Fatalf("n=%d: X[%d][%d] = %v written above the diagonal", n, i, j, x[i*ldx+j])
						}
						continue
					}
					if math.Abs(s-want) > 1e-9 {
						t.Fatalf("n=%d: (X·L)[%d][%d] = %v, want %v", n, i, j, s, want)
					}
				}
			}
		}
	})
}

func TestCholeskyRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    []float64
	}{
		{"negative pivot", []float64{1, 0, 2, -3}},
		{"zero", []float64{0}},
		{"NaN", []float64{math.NaN()}},
		{"singular", []float64{1, 0, 1, 1}},
	} {
		n := int(math.Sqrt(float64(len(tc.a))))
		if Cholesky(append([]float64(nil), tc.a...), n, n) {
			t.Errorf("%s: factorised", tc.name)
		}
	}
	// a larger indefinite matrix fails in a later panel, not only the first
	r := rand.New(rand.NewPCG(5, 6))
	n := 250
	a := spd(r, n)
	a[200*n+200] = -1
	if Cholesky(a, n, n) {
		t.Error("indefinite 250×250: factorised")
	}
}

func BenchmarkCholesky(b *testing.B) {
	for _, n := range []int{1024, 2048} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			a := spd(rand.New(rand.NewPCG(7, 8)), n)
			w := make([]float64, n*n)
			b.SetBytes(int64(n) * int64(n) * int64(n) / 3) // its flops: MB/s reads as Mflop/s
			for b.Loop() {
				copy(w, a)
				if !Cholesky(w, n, n) {
					b.Fatal("not positive definite")
				}
			}
		})
	}
}

func BenchmarkInvertLower(b *testing.B) {
	for _, n := range []int{1024, 2048} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			a := spd(rand.New(rand.NewPCG(7, 8)), n)
			Cholesky(a, n, n)
			for i := 0; i < n; i++ {
				clear(a[i*n+i+1 : (i+1)*n])
			}
			x := make([]float64, n*n)
			b.SetBytes(int64(n) * int64(n) * int64(n) / 3) // its flops: MB/s reads as Mflop/s
			for b.Loop() {
				copy(x, a)
				InvertLower(x, n, n)
			}
		})
	}
}

func TestAddGram(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	n, c := 37, 70
	x := make([]float32, n*c)
	y := make([]float32, n*c)
	for i := range x {
		x[i], y[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	for _, upper := range []bool{false, true} {
		dst := make([]float64, c*(c+1))
		for i := range dst {
			dst[i] = 1
		}
		AddGram(dst, c+1, x, y, n, c, upper)
		for i := 0; i < c; i++ {
			for j := 0; j < c; j++ {
				want := 1.0
				for tt := 0; tt < n; tt++ {
					want += float64(x[tt*c+i]) * float64(y[tt*c+j])
				}
				got := dst[i*(c+1)+j]
				if upper && j < i {
					continue
				}
				if math.Abs(got-want) > 1e-12*float64(n)*(1+math.Abs(want)) {
					t.Fatalf("upper=%v: dst[%d][%d] = %v, want %v", upper, i, j, got, want)
				}
			}
			if dst[i*(c+1)+c] != 1 {
				t.Fatalf("upper=%v: the padding column of row %d written", upper, i)
			}
		}
	}
}

func TestSubProduct(t *testing.T) {
	kernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, sz := range [][3]int{{16, 300, 128}, {3, 9, 1}, {16, 8, 64}, {17, 70, 300}} {
			m, n, k := sz[0], sz[1], sz[2]
			ldc, lda, ldb := n+1, k+2, n+3
			f := func(rows, cols int) []float32 {
				v := make([]float32, rows*cols)
				for i := range v {
					v[i] = float32(r.NormFloat64())
				}
				return v
			}
			c, a, b := f(m, ldc), f(m, lda), f(k, ldb)
			want := append([]float32(nil), c...)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var s float64
					for kk := 0; kk < k; kk++ {
						s += float64(a[i*lda+kk]) * float64(b[kk*ldb+j])
					}
					want[i*ldc+j] = float32(float64(want[i*ldc+j]) - s)
				}
			}
			SubProduct(c, ldc, a, lda, b, ldb, m, n, k)
			for i := range c {
				if d := math.Abs(float64(c[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("%v: c[%d] = %v, want %v", sz, i, c[i], want[i])
				}
			}
		}
	})
}

func TestQuadForms(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	m, n := 270, 37 // past one 256-row chunk
	a, h := randMat(r, m, n), randMat(r, n, n)
	got := make([]float64, m)
	QuadForms(got, a, m, n, h)
	for row := 0; row < m; row++ {
		var want float64
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				want += a[row*n+i] * h[i*n+j] * a[row*n+j]
			}
		}
		if math.Abs(got[row]-want) > 1e-10*(1+math.Abs(want)) {
			t.Fatalf("row %d: %v, want %v", row, got[row], want)
		}
	}
}

// BenchmarkMulAdd: C += A·B at square sizes, each kernel this machine has
// (MB/s reads as Mflop/s).
func BenchmarkMulAdd(b *testing.B) {
	saved := active
	defer func() { active = saved }()
	for _, k := range available() {
		for _, n := range []int{512, 2048} {
			b.Run(fmt.Sprintf("%s/%d", k.name, n), func(b *testing.B) {
				active = k
				r := rand.New(rand.NewPCG(11, 12))
				x, y, c := randMat(r, n, n), randMat(r, n, n), make([]float64, n*n)
				b.SetBytes(2 * int64(n) * int64(n) * int64(n))
				for b.Loop() {
					MulAdd(n, n, n, 1, x, n, y, n, c, n)
				}
			})
		}
	}
}

// TestFMAKernelsAgree: the vector kernels sum each element over k in the
// same order with fused multiply-adds, so their results are the same bits
// (the portable kernel rounds each product: close, not equal).
func TestFMAKernelsAgree(t *testing.T) {
	saved := active
	defer func() { active = saved }()
	r := rand.New(rand.NewPCG(13, 14))
	const m, n, k = 203, 150, 600
	a, b, c0 := randMat(r, m, k), randMat(r, k, n), randMat(r, m, n)
	fma := 0
	for _, kn := range available() {
		if kn.name != "go" {
			fma++
		}
	}
	if fma < 2 {
		t.Skipf("%d vector kernel on this machine: nothing to compare", fma)
	}
	var first []float64
	var firstName string
	for _, kn := range available() {
		if kn.name == "go" {
			continue
		}
		active = kn
		c := append([]float64(nil), c0...)
		MulAdd(m, n, k, -0.5, a, k, b, n, c, n)
		if first == nil {
			first, firstName = c, kn.name
			continue
		}
		for i := range c {
			if math.Float64bits(c[i]) != math.Float64bits(first[i]) {
				t.Fatalf("%s and %s differ at %d: %v against %v", kn.name, firstName, i, c[i], first[i])
			}
		}
	}
}
