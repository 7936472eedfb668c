package compress

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/internal/testutil"
)

const miniphiDir = "../../shared/models/miniphi-29m"

// TestCheckReachable: the early check passes a target of exactly
// minimumBytes and refuses one byte less, for each family; minimumBytes is
// the sum of each matrix's smallest ladder size, the vectors in float32 and
// the preamble, counted here from the tensors directly.
func TestCheckReachable(t *testing.T) {
	testutil.NeedData(t, miniphiDir)
	ck, err := checkpoint.Open(miniphiDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, fam := range []Family{"auto", "trellis", "sparse", "overlay"} {
		least, params, err := minimumBytes(ck.Tensors, fam)
		if err != nil {
			t.Fatal(err)
		}
		want, wantParams := int64(32), int64(0)
		for _, n := range ck.Tensors.Names() {
			shape, _ := ck.Tensors.Shape(n)
			if len(shape) != 2 {
				k := int64(1)
				for _, d := range shape {
					k *= int64(d)
				}
				want += 4 * k
				wantParams += k
				continue
			}
			wantParams += int64(shape[0] * shape[1])
			cands, _ := Ladder(fam, shape[1])
			small := int64(1 << 62)
			for _, cp := range cands {
				s, err := codec.EncodedSize(cp, shape[0], shape[1])
				if err != nil {
					t.Fatal(err)
				}
				small = min(small, s)
			}
			want += small
		}
		if least != want || params != wantParams {
			t.Errorf("%s: minimumBytes %d bytes, %d parameters; counted %d, %d", fam, least, params, want, wantParams)
		}
		if err := checkReachable(ck.Tensors, Options{Family: fam, TargetBytes: least}); err != nil {
			t.Errorf("%s: a target of exactly the minimum refused: %v", fam, err)
		}
		if err := checkReachable(ck.Tensors, Options{Family: fam, TargetBytes: least - 1}); err == nil {
			t.Errorf("%s: a target one byte under the minimum passed", fam)
		}
	}
}

// TestLateFailureKeepsOutput: a target that passes the early check but not
// the exact one after planning (the header does not fit) fails there, and
// an existing output file survives with no temporary file left.
func TestLateFailureKeepsOutput(t *testing.T) {
	testutil.NeedData(t, miniphiDir)
	ck, err := checkpoint.Open(miniphiDir)
	if err != nil {
		t.Fatal(err)
	}
	least, _, err := minimumBytes(ck.Tensors, "auto")
	ck.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "m.upg")
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(miniphiDir, out, Options{TargetBytes: least + 1, Threads: 2})
	// the exact check's words ("budget": the target less the header and the
	// vectors), not the early check's ("target")
	if err == nil || !strings.Contains(err.Error(), "-byte budget: raise --target-size") {
		t.Fatalf("a target one byte over the lower bound: %v", err)
	}
	KeptOutput(t, dir, out)
}

// KeptOutput checks what a failed run leaves: out as the test wrote it
// ("precious") and no other file in dir. (compress_test uses it too.)
func KeptOutput(t *testing.T, dir, out string) {
	t.Helper()
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Errorf("a failed run clobbered the existing output: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
