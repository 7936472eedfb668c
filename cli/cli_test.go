package cli

// End-to-end tests of the upg command. TestMain builds the real binary once
// and every test runs it as a child process, so a panic anywhere shows up as
// exit code 2 with "panic:" and a goroutine dump on stderr, which every
// check below rejects.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upg-ai/upg/internal/testutil"
)

// Shared test data (see /work/shared/README.md), relative to this package.
const (
	miniphi    = "../../shared/models/miniphi-29m"
	tinyStory  = "../../shared/models/TinyStories-656K"
	tinyQwen   = "../../shared/models/tiny-qwen2-random"
	stories    = "../../shared/models/stories260K/stories260K.gguf"
	greedy200  = "../../shared/models/stories260K/greedy200.txt"
	cl100kFile = "../../shared/tokenizers/tiktoken/cl100k_base.tiktoken"
)

// upgBin is the binary built by TestMain.
var upgBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "upg-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	upgBin = filepath.Join(dir, "upg")
	build := exec.Command("go", "build", "-o", upgBin, "../cmd/upg")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building upg: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary produced.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("upg %q: exit %d\nstdout: %q\nstderr: %q", r.args, r.code, r.stdout, r.stderr)
}

// upg runs the binary with args (in this package's directory, with no demo
// model reachable) and checks that it did not panic.
func upg(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, upgBin, args...)
	cmd.Env = append(os.Environ(), "UPG_DEMO_MODEL=/nonexistent/demo.upg")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("upg %q did not exit normally (%v; timeout %v)\nstderr: %s", args, err, ctx.Err(), r.stderr)
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("upg panicked:\n%s", r)
	}
	return r
}

// wantFail checks a failed run: exit code code, and stderr one line
// "upg: ..." that contains every fragment. Usage errors (code 2) may add a
// second line pointing at --help.
func wantFail(t *testing.T, r result, code int, fragments ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\n%s", r.code, code, r)
		return
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if code == exitUsage && len(lines) == 2 && strings.HasPrefix(lines[1], "Run 'upg") && strings.HasSuffix(lines[1], "--help' for usage.") {
		lines = lines[:1]
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "upg: ") || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not one line starting with \"upg: \"\n%s", r)
		return
	}
	for _, f := range fragments {
		if !strings.Contains(lines[0], f) {
			t.Errorf("error line does not mention %q\n%s", f, r)
		}
	}
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		testutil.CopyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dst
}

// editSafetensorsHeader rewrites the JSON header of a safetensors file
// through edit, keeping the data section as it is.
func editSafetensorsHeader(t *testing.T, path string, edit func(h map[string]map[string]any)) {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(buf)
	var h map[string]map[string]any
	if err := json.Unmarshal(buf[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hj)))
	out = append(append(out, hj...), buf[8+n:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lastTensor returns the name of the tensor whose data ends last.
func lastTensor(h map[string]map[string]any) string {
	best, bestEnd := "", -1.0
	for name, e := range h {
		if name == "__metadata__" {
			continue
		}
		if end := e["data_offsets"].([]any)[1].(float64); end > bestEnd {
			best, bestEnd = name, end
		}
	}
	return best
}

func TestTruncatedSafetensors(t *testing.T) {
	testutil.NeedData(t, tinyQwen)
	dir := copyDir(t, tinyQwen)
	p := filepath.Join(dir, "model.safetensors")
	st, _ := os.Stat(p)
	if err := os.Truncate(p, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"run", "--model", dir, "hi"}, {"inspect", dir}} {
		wantFail(t, upg(t, cmd...), exitError, p, "truncated")
	}
}

func TestSafetensorsOffsetsOverrunFile(t *testing.T) {
	testutil.NeedData(t, tinyQwen)
	dir := copyDir(t, tinyQwen)
	p := filepath.Join(dir, "model.safetensors")
	var name string
	editSafetensorsHeader(t, p, func(h map[string]map[string]any) {
		name = lastTensor(h)
		off := h[name]["data_offsets"].([]any)
		off[0], off[1] = off[0].(float64)+4096, off[1].(float64)+4096
	})
	wantFail(t, upg(t, "run", "--model", dir, "hi"), exitError, p, strconv.Quote(name), "overruns")
}

func TestSafetensorsUnknownDType(t *testing.T) {
	testutil.NeedData(t, tinyQwen)
	dir := copyDir(t, tinyQwen)
	p := filepath.Join(dir, "model.safetensors")
	const name = "model.layers.1.self_attn.k_proj.weight"
	editSafetensorsHeader(t, p, func(h map[string]map[string]any) {
		if h[name] == nil {
			t.Fatalf("%s has no tensor %s", tinyQwen, name)
		}
		h[name]["dtype"] = "F8_E4M3"
	})
	wantFail(t, upg(t, "run", "--model", dir, "hi"), exitError, p, strconv.Quote(name), `"F8_E4M3"`)
	// inspect reads no tensor data, so it still works and shows the dtype.
	r := upg(t, "inspect", "--tensors", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "F8_E4M3") {
		t.Errorf("inspect of a file with an unknown dtype should succeed and list it\n%s", r)
	}
}

// A shape whose byte size overflows 64 bits (2^62 F32 elements = 2^64 bytes,
// which wraps to 0) must not pass for an empty tensor: loading it would then
// allocate 2^62 floats and panic.
func TestSafetensorsShapeOverflow(t *testing.T) {
	testutil.NeedData(t, tinyQwen)
	dir := copyDir(t, tinyQwen)
	p := filepath.Join(dir, "model.safetensors")
	const name = "model.norm.weight"
	editSafetensorsHeader(t, p, func(h map[string]map[string]any) {
		off := h[name]["data_offsets"].([]any)
		h[name]["shape"] = []any{1 << 31, 1 << 31}
		h[name]["data_offsets"] = []any{off[0], off[0]}
	})
	wantFail(t, upg(t, "run", "--model", dir, "hi"), exitError, p, strconv.Quote(name), "[2147483648 2147483648]")
}

// Counting one tensor fewer than the file holds moves the data section; the
// missing tensor must be reported, not run with misplaced weights.
func TestGGUFTensorCountOneFewer(t *testing.T) {
	testutil.NeedData(t, stories)
	p := ggufCopy(t, func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])-1)
		return b
	})
	wantFail(t, upg(t, "run", "--model", p, "--max-tokens", "4", "Once"), exitError, p, `"model.layers.4.post_attention_layernorm.weight" not found`)
}

func TestUnknownArchitecture(t *testing.T) {
	testutil.NeedData(t, tinyQwen)
	dir := copyDir(t, tinyQwen)
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`"Qwen2ForCausalLM"`), []byte(`"GPT2LMHeadModel"`), 1)
	if !bytes.Contains(cfg, []byte("GPT2LMHeadModel")) {
		t.Fatal("could not rewrite the architecture")
	}
	os.WriteFile(cfgPath, cfg, 0o644)
	for _, cmd := range [][]string{{"run", "--model", dir, "hi"}, {"inspect", dir}} {
		wantFail(t, upg(t, cmd...), exitError, cfgPath, "GPT2LMHeadModel",
			"Phi3ForCausalLM", "LlamaForCausalLM", "Qwen2ForCausalLM")
	}
}

func TestMissingTokenizer(t *testing.T) {
	testutil.NeedData(t, tinyQwen)
	dir := copyDir(t, tinyQwen)
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	for _, cmd := range [][]string{{"run", "--model", dir, "hi"}, {"tokenize", "--model", dir, "hi"}} {
		r := upg(t, cmd...)
		wantFail(t, r, exitError, dir)
		if !strings.Contains(r.stderr, "no tokenizer") || !strings.Contains(r.stderr, "found") {
			t.Errorf("error should say that no tokenizer was found\n%s", r)
		}
	}
}

// ggufCopy returns a copy of stories260K.gguf changed by edit.
func ggufCopy(t *testing.T, edit func([]byte) []byte) string {
	t.Helper()
	buf, err := os.ReadFile(stories)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bad.gguf")
	if err := os.WriteFile(p, edit(buf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCorruptGGUF(t *testing.T) {
	testutil.NeedData(t, stories)
	cases := []struct {
		name      string
		edit      func([]byte) []byte
		fragments []string
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, nil},
		{"header only", func(b []byte) []byte { return b[:30] }, nil},
		{"tiny", func(b []byte) []byte { return b[:10] }, nil},
		{"empty", func(b []byte) []byte { return nil }, nil},
		{"bad magic", func(b []byte) []byte { copy(b, "GGUX"); return b }, []string{"magic"}},
		{"bad version", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 99); return b }, []string{"version"}},
		{"tensor count lies", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], 1<<40); return b }, []string{"tensor"}},
		{"tensor count max", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], ^uint64(0)); return b }, []string{"tensor"}},
		{"kv count lies", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 1<<40); return b }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ggufCopy(t, c.edit)
			for _, cmd := range [][]string{{"inspect", p}, {"run", "--model", p, "--max-tokens", "4", "Once"}} {
				wantFail(t, upg(t, cmd...), exitError, append([]string{p}, c.fragments...)...)
			}
		})
	}
}

// Flipping bytes anywhere in the header and metadata (which hold the
// vocabulary) must give either a working model or a clean error.
func TestGGUFByteFlips(t *testing.T) {
	testutil.NeedData(t, stories)
	orig, err := os.ReadFile(stories)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 24; i++ {
		pos := rng.IntN(min(len(orig), 64<<10))
		if i < 8 {
			pos = 4 + 3*i // the version and count fields
		}
		p := ggufCopy(t, func(b []byte) []byte { b[pos] ^= byte(1 + rng.IntN(255)); return b })
		r := upg(t, "tokenize", "--model", p, "Once upon a time")
		if r.code != 0 {
			wantFail(t, r, exitError, p)
		}
	}
}

func TestBadPaths(t *testing.T) {
	testutil.NeedData(t, stories)
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "no-such-model")
	noConfig := t.TempDir()
	os.WriteFile(filepath.Join(noConfig, "model.safetensors"), []byte("x"), 0o644)
	// Neither magic: a renamed GGUF or .upg is recognised (TestSniffMagic).
	unknownExt := filepath.Join(tmp, "model.bin")
	os.WriteFile(unknownExt, []byte("PK\x03\x04 not a model"), 0o644)
	// A path that contains the word "flag" is still a bad file, not a usage error.
	flagDir := filepath.Join(tmp, "flags", "model.gguf")

	for _, c := range []struct {
		path      string
		fragments []string // in the error of run and inspect
		tokenize  []string // in the error of tokenize, which also accepts tokenizer files and directories
	}{
		{missing, []string{"no such file"}, []string{"no such file"}},
		{noConfig, []string{"config.json"}, []string{"no tokenizer"}},
		{unknownExt, []string{"format"}, []string{"format"}},
		{flagDir, []string{"no such file"}, []string{"no such file"}},
	} {
		for _, cmd := range [][]string{{"run", "--model", c.path, "hi"}, {"inspect", c.path}} {
			wantFail(t, upg(t, cmd...), exitError, append([]string{c.path}, c.fragments...)...)
		}
		wantFail(t, upg(t, "tokenize", "--model", c.path, "hi"), exitError, append([]string{c.path}, c.tokenize...)...)
	}
}

func TestUsageErrors(t *testing.T) {
	testutil.NeedData(t, miniphi)
	for _, c := range []struct {
		args      []string
		fragments []string
	}{
		{[]string{"run", "--model", miniphi, "--temperature", "-1", "hi"}, []string{"temperature"}},
		{[]string{"run", "--model", miniphi, "--temperature", "NaN", "hi"}, []string{"temperature"}},
		{[]string{"run", "--model", miniphi, "--temperature", "hot", "hi"}, []string{"temperature"}},
		{[]string{"run", "--model", miniphi, "--top-p", "2", "hi"}, []string{"top-p"}},
		{[]string{"run", "--model", miniphi, "--frequency-penalty", "3", "hi"}, []string{"--frequency-penalty 3 must be in [-2, 2]"}},
		{[]string{"chat", "--model", miniphi, "--presence-penalty", "-2.5"}, []string{"--presence-penalty -2.5 must be in [-2, 2]"}},
		// --ctx bounds the run should -1 be taken as "no limit".
		{[]string{"run", "--model", miniphi, "--ctx", "64", "--max-tokens", "-1", "hi"}, []string{"max-tokens"}},
		{[]string{"run", "--model", miniphi, "--frobnicate", "hi"}, []string{"frobnicate"}},
		{[]string{"run", "--model", miniphi}, []string{"no prompt"}}, // standard input is empty
		{[]string{"run", "--model", miniphi, "--file", "x", "hi"}, []string{"not both"}},
		{[]string{"run", "--model", miniphi, "a", "b"}, []string{"arg"}},
		{[]string{"tokenize", "--model", miniphi}, []string{"TEXT"}},
		{[]string{"inspect"}, []string{"arg"}},
		{[]string{"frobnicate"}, []string{"frobnicate"}},
		{[]string{"run", "--model", miniphi, "--kv-cache", "q4", "hi"}, []string{"--kv-cache must be f16, f32 or q8", `"q4"`}},
		{[]string{"chat", "--model", miniphi, "--kv-cache", "int8"}, []string{"--kv-cache must be f16, f32 or q8"}},
		{[]string{"bench", "--model", miniphi, "--kv-cache", "bf16"}, []string{"--kv-cache must be f16, f32 or q8"}},
		{[]string{"serve", "--model", miniphi, "--kv-cache", ""}, []string{"--kv-cache must be f16, f32 or q8"}},
		{[]string{"eval", "--model", miniphi, "--text", "missing.txt", "--kv-cache", "q"}, []string{"--kv-cache must be f16, f32 or q8"}},
		{[]string{"compress", miniphi, "--out", "x.upg", "--target-size", "9.4MB", "--target-bpw", "3"}, []string{"--target-bpw or --target-size, not both"}},
		{[]string{"compress", miniphi, "--out", "x.upg", "--target-size", "lots"}, []string{"--target-size", `"lots"`}},
		{[]string{"compress", miniphi, "--out", "x.upg", "--target-size", "0"}, []string{"--target-size", "positive"}},
		{[]string{"run", "--model", miniphi, "--lookup", "-1", "hi"}, []string{"--lookup -1 must be in [0, 64]"}},
		{[]string{"chat", "--model", miniphi, "--lookup", "65"}, []string{"--lookup 65 must be in [0, 64]"}},
		{[]string{"serve", "--model", miniphi, "--lookup", "100"}, []string{"--lookup 100 must be in [0, 64]"}},
	} {
		wantFail(t, upg(t, c.args...), exitUsage, c.fragments...)
	}
}

// TestCompressRotateResidualTied: upg compress rotates the residual stream
// by default where the model can take it; a tied model (TinyStories-656K)
// is then kept plain, and asking for the rotation on it is an error naming
// the tie, with no output left behind.
func TestCompressRotateResidualTied(t *testing.T) {
	testutil.NeedData(t, tinyStory)
	out := filepath.Join(t.TempDir(), "ts.upg")
	r := upg(t, "compress", tinyStory, "--out", out, "--target-bpw", "8", "--rotate-residual", "-q")
	wantFail(t, r, exitError, "ties them")
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused compression left %s (stat: %v)", out, err)
	}
	r = upg(t, "compress", tinyStory, "--out", out, "--target-bpw", "8", "-q")
	if r.code != 0 {
		t.Fatalf("default compression of a tied model failed\n%s", r)
	}
	if !strings.Contains(r.stdout, "residual stream: plain (") || !strings.Contains(r.stdout, "ties them") {
		t.Errorf("the report does not say the stream stayed plain, and why:\n%s", r.stdout)
	}
}

// TestEmptyPrompt: miniphi's tokenizer adds no BOS, so "" is no tokens.
func TestEmptyPrompt(t *testing.T) {
	testutil.NeedData(t, miniphi)
	wantFail(t, upg(t, "run", "--model", miniphi, "--max-tokens", "4", ""), exitUsage, "empty prompt")
}

type refCase struct {
	Prompt     string `json:"prompt"`
	InputIDs   []int  `json:"input_ids"`
	Greedy32   []int  `json:"greedy_32"`
	GreedyText string `json:"greedy_text"`
}

func readRefs(t *testing.T, dir string) []refCase {
	t.Helper()
	testutil.NeedData(t, dir)
	data, err := os.ReadFile(filepath.Join(dir, "reference_outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs struct{ Cases []refCase }
	if err := json.Unmarshal(data, &refs); err != nil {
		t.Fatal(err)
	}
	if len(refs.Cases) == 0 {
		t.Fatalf("%s: no reference cases", dir)
	}
	return refs.Cases
}

func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, " ")
}

// wantOK checks a successful run: exit 0 and, when stderrLines >= 0, that
// many lines on stderr.
func wantOK(t *testing.T, r result, stderrLines int) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("want success\n%s", r)
	}
	if stderrLines >= 0 && strings.Count(r.stderr, "\n") != stderrLines {
		t.Errorf("want %d stderr lines\n%s", stderrLines, r)
	}
}

func TestRunMiniphiGreedy(t *testing.T) {
	for _, c := range readRefs(t, miniphi) {
		r := upg(t, "run", "--model", miniphi, "--temperature", "0", "--max-tokens", "32", c.Prompt)
		wantOK(t, r, 1)
		if r.stdout != c.GreedyText {
			t.Errorf("prompt %q:\n got %q\nwant %q (transformers greedy)", c.Prompt, r.stdout, c.GreedyText)
		}
		summary := fmt.Sprintf("[prompt %d tokens, generated %d tokens;", len(c.InputIDs), len(c.Greedy32))
		if !strings.HasPrefix(r.stderr, summary) {
			t.Errorf("summary line %q does not start with %q", r.stderr, summary)
		}
	}
}

// TestRunFormatJSON: `upg run --format json` prints one JSON object that
// encoding/json accepts (the demo model, a code model, writes Go without
// it), stopped by end of text; the flag's bad values are usage errors.
func TestRunFormatJSON(t *testing.T) {
	testutil.NeedData(t, miniphi)
	prompt := "\tin := `{\"name\": \"gopher\", \"age\": 3}`\n\tout := `"
	r := upg(t, "run", "--model", miniphi, "--temperature", "0", "--max-tokens", "200", "--format", "json", prompt)
	wantOK(t, r, 1)
	if !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stderr, "stop: eos") {
		t.Errorf("--format json: %q\n%s", r.stdout, r.stderr)
	}
	plain := upg(t, "run", "--model", miniphi, "--temperature", "0", "--max-tokens", "40", prompt)
	if json.Valid([]byte(plain.stdout)) {
		t.Errorf("without --format json the output is JSON already: %q", plain.stdout)
	}
	wantFail(t, upg(t, "run", "--model", miniphi, "--format", "yaml", "hi"), exitUsage, `--format "yaml"`)
	wantFail(t, upg(t, "run", "--model", miniphi, "--format", "json", "--ignore-eos", "hi"), exitUsage, "--format and --ignore-eos")
}

// TestRunFormatSchema: `upg run --format schema.json` prints one value the
// schema accepts — its properties in the file's order, the enum's value,
// an integer — and a schema with an unsupported keyword is a usage error
// naming it, before any model is loaded.
func TestRunFormatSchema(t *testing.T) {
	testutil.NeedData(t, miniphi)
	dir := t.TempDir()
	schema := filepath.Join(dir, "user.json")
	if err := os.WriteFile(schema, []byte(`{"type":"object","properties":{"name":{"enum":["gopher","ada"]},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"},"maxItems":2}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	prompt := "	in := `{\"name\": \"gopher\", \"age\": 3}`\n\tout := `"
	r := upg(t, "run", "--model", miniphi, "--temperature", "0", "--max-tokens", "200", "--frequency-penalty", "0.5", "--format", schema, prompt)
	wantOK(t, r, 1)
	var u struct {
		Name string   `json:"name"`
		Age  int      `json:"age"`
		Tags []string `json:"tags"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil || (u.Name != "gopher" && u.Name != "ada") || len(u.Tags) > 2 ||
		!strings.HasPrefix(strings.Join(strings.Fields(r.stdout), ""), `{"name":`) || !strings.Contains(r.stderr, "stop: eos") {
		t.Errorf("--format %s: %v: %q\n%s", schema, err, r.stdout, r.stderr)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"type":"string","not":{"const":"a"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	wantFail(t, upg(t, "run", "--model", "/nonexistent.upg", "--format", bad, "hi"), exitUsage, `keyword "not" is not supported`)
	wantFail(t, upg(t, "run", "--model", miniphi, "--format", filepath.Join(dir, "none.json"), "hi"), exitUsage, `neither "json" nor a readable JSON Schema file`)
}

// TestRunLookupGreedy: with prompt lookup, greedy text is still
// transformers' greedy text, and a prompt whose continuation repeats it
// keeps drafted tokens, which the summary line reports; sampled with a
// seed, the text is the text without lookup.
func TestRunLookupGreedy(t *testing.T) {
	for _, c := range readRefs(t, miniphi) {
		r := upg(t, "run", "--model", miniphi, "--temperature", "0", "--max-tokens", "32", "--lookup", "8", c.Prompt)
		wantOK(t, r, 1)
		if r.stdout != c.GreedyText {
			t.Errorf("prompt %q with --lookup 8:\n got %q\nwant %q (transformers greedy)", c.Prompt, r.stdout, c.GreedyText)
		}
	}
	prompt := "func add(a, b int) int {\n\treturn a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n\nfunc mul(a, b int) int {\n\treturn"
	plain := upg(t, "run", "--model", miniphi, "--temperature", "0", "--max-tokens", "40", prompt)
	r := upg(t, "run", "--model", miniphi, "--temperature", "0", "--max-tokens", "40", "--lookup", "4", prompt)
	wantOK(t, r, 1)
	if r.stdout != plain.stdout {
		t.Errorf("with --lookup 4:\n%q\nwithout:\n%q", r.stdout, plain.stdout)
	}
	if !regexp.MustCompile(`; lookup kept [1-9][0-9]* of [1-9][0-9]* drafted tokens; stop: length\]`).MatchString(r.stderr) {
		t.Errorf("summary line %q does not report kept drafts", r.stderr)
	}
	r = upg(t, "run", "--model", miniphi, "--temperature", "0.8", "--seed", "3", "--max-tokens", "40", "--lookup", "4", prompt)
	wantOK(t, r, 1)
	if without := upg(t, "run", "--model", miniphi, "--temperature", "0.8", "--seed", "3", "--max-tokens", "40", prompt); without.stdout != r.stdout {
		t.Errorf("sampled with seed 3, --lookup 4: %q\nwithout: %q", r.stdout, without.stdout)
	}
	if !strings.Contains(r.stderr, "; lookup kept ") {
		t.Errorf("sampled: summary line %q does not report drafts", r.stderr)
	}
}

func TestTokenize(t *testing.T) {
	for _, dir := range []string{miniphi, tinyStory} {
		for _, c := range readRefs(t, dir) {
			r := upg(t, "tokenize", "--model", dir, c.Prompt)
			wantOK(t, r, 0)
			if got, want := r.stdout, joinIDs(c.InputIDs)+"\n"; got != want {
				t.Errorf("%s: tokenize %q = %q, want %q", dir, c.Prompt, got, want)
			}
		}
	}
	testutil.NeedData(t, cl100kFile)
	r := upg(t, "tokenize", "--model", cl100kFile, "Hello world")
	wantOK(t, r, 0)
	if r.stdout != "9906 1917\n" {
		t.Errorf("cl100k_base: tokenize \"Hello world\" = %q, want \"9906 1917\\n\"", r.stdout)
	}
}

func TestInspect(t *testing.T) {
	testutil.NeedData(t, miniphi, stories)
	r := upg(t, "inspect", miniphi)
	wantOK(t, r, 0)
	for _, s := range []string{`Phi3ForCausalLM`, `\b28842496\b`, `layers\s+6\n`, `vocab\s+8192\n`} {
		if !regexp.MustCompile(s).MatchString(r.stdout) {
			t.Errorf("inspect %s does not show %q\n%s", miniphi, s, r.stdout)
		}
	}
	r = upg(t, "inspect", "--json", miniphi)
	wantOK(t, r, 0)
	var j struct{ Parameters int64 }
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.Parameters != 28842496 {
		t.Errorf("inspect --json: parameters %d (%v), want 28842496", j.Parameters, err)
	}

	// stories260K (llama2.c): dim 64, 5 layers, 8 heads (4 kv), FFN 172,
	// vocab 512: 512*64 + 5*(2*64 + 2*64*64 + 2*32*64 + 3*64*172) + 64 =
	// 260032 parameters, plus the classifier that the GGUF stores as its own
	// output.weight (512*64): 292800.
	r = upg(t, "inspect", stories)
	wantOK(t, r, 0)
	for _, s := range []string{`gguf:llama`, `\b292800\b`, `layers\s+5\n`, `hidden\s+64\n`, `vocab\s+512\n`, `heads\s+8 \(kv 4, head dim 8\)`} {
		if !regexp.MustCompile(s).MatchString(r.stdout) {
			t.Errorf("inspect %s does not show %q\n%s", stories, s, r.stdout)
		}
	}
}

// TestRunStories260K reproduces llama2.c's published greedy output of
// stories260K: run.c starts from BOS, generates steps tokens and prints
// them, stripping the leading space of the first piece after BOS.
func TestRunStories260K(t *testing.T) {
	testutil.NeedData(t, stories, greedy200)
	want, err := os.ReadFile(greedy200)
	if err != nil {
		t.Fatal(err)
	}
	r := upg(t, "run", "--model", stories, "--temperature", "0", "--repeat-penalty", "1", "--max-tokens", "200", "")
	wantOK(t, r, 1)
	got := r.stdout + "\n" // run.c ends with a newline (and strips the first piece's space, as upg does)
	if got != string(want) {
		t.Errorf("stories260K greedy:\n got %q\nwant %q", got, want)
	}
	if !strings.HasPrefix(r.stderr, "[prompt 1 tokens, generated 200 tokens;") {
		t.Errorf("summary %q: want a prompt of BOS only and 200 generated tokens", r.stderr)
	}
}

var (
	compressOnce   sync.Once
	compressed     string // the .upg made by compressTinyQwen
	compressResult result
)

// compressTinyQwen makes a small .upg (once per test run) with the fast
// dense-uniform codec. Callers must not modify it.
func compressTinyQwen(t *testing.T) string {
	t.Helper()
	testutil.NeedData(t, tinyQwen)
	compressOnce.Do(func() {
		p := filepath.Join(filepath.Dir(upgBin), "tq.upg")
		compressResult = upg(t, "compress", tinyQwen, "--out", p, "--target-bpw", "4", "--codec", "dense-uniform")
		if compressResult.code == 0 {
			compressed = p
		}
	})
	if compressed == "" {
		t.Fatalf("compress failed\n%s", compressResult)
	}
	return compressed
}

// TestUPGFile: a compressed file verifies and runs; damaged copies fail
// cleanly with an error naming the file and what is wrong.
func TestUPGFile(t *testing.T) {
	good := compressTinyQwen(t)
	r := upg(t, "verify", good)
	wantOK(t, r, -1)
	if !strings.Contains(r.stdout, "OK") {
		t.Errorf("verify of a fresh file does not say OK\n%s", r)
	}
	r = upg(t, "run", "--model", good, "--temperature", "0", "--max-tokens", "8", "It was a bright cold day")
	wantOK(t, r, 1)
	if !strings.HasPrefix(r.stderr, "[prompt 8 tokens, generated 8 tokens;") {
		t.Errorf("unexpected summary\n%s", r)
	}

	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flip := func(i int) []byte { b := bytes.Clone(orig); b[i] ^= 0x10; return b }
	n := len(orig)

	// Damage that Open sees: every command fails.
	for _, c := range []struct {
		name      string
		data      []byte
		fragments []string
	}{
		{"truncated.upg", orig[:n/2], []string{"truncated"}},
		{"empty.upg", nil, []string{"truncated"}},
		{"preamble.upg", flip(5), []string{"preamble"}},
		{"trailer.upg", flip(n - 10), []string{"trailer"}},
		{"magic.upg", flip(0), nil},
	} {
		p := write(c.name, c.data)
		for _, cmd := range [][]string{{"verify", p}, {"inspect", p}, {"run", "--model", p, "hi"}} {
			wantFail(t, upg(t, cmd...), exitError, append([]string{p}, c.fragments...)...)
		}
	}
	// Damage inside tensor data and padding: verify names it.
	for _, c := range []struct {
		name      string
		data      []byte
		fragments []string
	}{
		{"data.upg", flip(n / 2), []string{"checksum mismatch", "tensor"}},
		{"padding.upg", flip(100), []string{"padding"}},
	} {
		p := write(c.name, c.data)
		wantFail(t, upg(t, "verify", p), exitError, append([]string{p}, c.fragments...)...)
	}
}

// TestUPGCorruptTensorDataRun: a .upg whose tensor data no longer matches
// its checksum must not be run as if nothing happened.
func TestUPGCorruptTensorDataRun(t *testing.T) {
	good := compressTinyQwen(t)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	p := filepath.Join(t.TempDir(), "data.upg")
	os.WriteFile(p, b, 0o644)
	wantFail(t, upg(t, "run", "--model", p, "--max-tokens", "4", "hi"), exitError, p, "checksum mismatch")
}

// TestEvalKVCache checks that upg eval scores through the KV cache it is
// asked for: f32 by default, and q8 when asked, whose rounding shows in
// the perplexity (slightly, not wildly) and in the JSON's kv_cache.
func TestEvalKVCache(t *testing.T) {
	text := "../../shared/corpus/cs336_tinystories_sample.txt"
	testutil.NeedData(t, miniphi, text)
	score := func(args ...string) (ppl, kld float64, kv string) {
		r := upg(t, append([]string{"eval", "--model", demoUPG, "--ref", miniphi, "--text", text, "--ctx", "128", "--json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("%s", r)
		}
		var res struct {
			PPL     float64 `json:"ppl"`
			KLD     float64 `json:"kld_mean"`
			KVCache string  `json:"kv_cache"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		return res.PPL, res.KLD, res.KVCache
	}
	p32, k32, kv32 := score()
	p8, k8, kv8 := score("--kv-cache", "q8")
	t.Logf("f32 cache: PPL %.4f KLD %.5f; q8 cache: PPL %.4f KLD %.5f", p32, k32, p8, k8)
	if kv32 != "f32" || kv8 != "q8" {
		t.Errorf("kv_cache %q by default and %q with --kv-cache q8", kv32, kv8)
	}
	if p8 == p32 || k8 == k32 {
		t.Errorf("--kv-cache q8 scored exactly as the f32 cache (PPL %v, KLD %v): the q8 cache was not used", p8, k8)
	}
	if math.Abs(p8/p32-1) > 0.02 || math.Abs(k8-k32) > 0.01 {
		t.Errorf("q8 cache: PPL %.4f KLD %.5f, f32 cache: PPL %.4f KLD %.5f: more than the int8 cache's rounding", p8, k8, p32, k32)
	}
}
