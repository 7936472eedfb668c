package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/checkpoint"
)

// ModelsEnv names the environment variable that sets the models directory.
const ModelsEnv = "UPG_MODELS"

// modelsDir is where model names are looked up: $UPG_MODELS, else upg/models
// under the user's data directory ($XDG_DATA_HOME or ~/.local/share on
// Linux, ~/Library/Application Support on macOS, %LocalAppData% on Windows).
func modelsDir() string {
	if d := os.Getenv(ModelsEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "upg", "models")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "upg", "models")
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "upg", "models")
		}
	}
	return filepath.Join(home, ".local", "share", "upg", "models")
}

// resolveModel turns a model name into a path: a path that exists is kept;
// a bare name (no directory part) is looked up in the models directory as
// NAME, NAME.upg or NAME.gguf. ok is false when a bare name was not found.
func resolveModel(p string) (path string, ok bool) {
	if p == "" {
		return p, true
	}
	if _, err := os.Stat(p); err == nil || strings.ContainsAny(p, `/\`) {
		return p, true
	}
	dir := modelsDir()
	for _, c := range []string{p, p + ".upg", p + ".gguf"} {
		if q := filepath.Join(dir, c); dir != "" {
			if _, err := os.Stat(q); err == nil {
				return q, true
			}
		}
	}
	return p, false
}

// modelPath resolves --model for loading, with an error that names the
// models directory when a bare name is nowhere.
func modelPath(p string) (string, error) {
	q, ok := resolveModel(p)
	if !ok {
		return "", fmt.Errorf("%s: no such file, and no %s, %s.upg or %s.gguf in the models directory %s (%s; see 'upg list')", p, p, p, p, modelsDir(), ModelsEnv)
	}
	return q, nil
}

func newListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the models in the models directory ($UPG_MODELS)",
		Long: `List the models that --model NAME finds: .upg and .gguf files and Hugging Face
directories in the models directory ($UPG_MODELS, default upg/models under the
user's data directory), with format, size, bits per weight and, for .upg files,
the quality the compressor measured (recorded in the file's provenance).`,
		Example: `  upg list
  UPG_MODELS=~/models upg list --json
  upg run --model phi4 "Hello"      # finds phi4.upg there`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := modelsDir()
			entries, err := os.ReadDir(dir)
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			type row struct {
				Name    string  `json:"name"`
				Path    string  `json:"path"`
				Format  string  `json:"format"`
				Bytes   int64   `json:"bytes"`
				BPW     float64 `json:"bits_per_weight"`
				Quality string  `json:"quality,omitempty"`
				Error   string  `json:"error,omitempty"`
			}
			var rows []row
			for _, e := range entries {
				name := e.Name()
				if strings.HasPrefix(name, ".") {
					continue
				}
				p := filepath.Join(dir, name)
				if !e.IsDir() && !strings.HasSuffix(name, ".upg") && !strings.HasSuffix(name, ".gguf") {
					continue
				}
				r := row{Name: strings.TrimSuffix(strings.TrimSuffix(name, ".upg"), ".gguf"), Path: p}
				ck, err := checkpoint.Open(p)
				if err != nil {
					if e.IsDir() {
						continue // not a model directory
					}
					r.Error = err.Error()
					rows = append(rows, r)
					continue
				}
				r.Format = ck.Format
				for _, n := range ck.Tensors.Names() {
					ti, _ := ck.Tensors.Info(n)
					r.Bytes += ti.Bytes
				}
				if st, err := os.Stat(p); err == nil && !st.IsDir() {
					r.Bytes = st.Size()
				}
				r.BPW = float64(r.Bytes*8) / float64(max(ck.NumParams(), 1))
				r.Quality = provenanceQuality(ck.Metadata["provenance"])
				ck.Close()
				rows = append(rows, r)
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, r := range rows {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			if len(rows) == 0 {
				fmt.Fprintf(os.Stderr, "no models in %s (set %s, or put .upg/.gguf files there)\n", dir, ModelsEnv)
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tFORMAT\tSIZE\tBITS/WEIGHT\tQUALITY")
			for _, r := range rows {
				if r.Error != "" {
					fmt.Fprintf(w, "%s\t?\t\t\tunreadable: %s\n", r.Name, r.Error)
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%.1f MB\t%.3f\t%s\n", r.Name, r.Format, float64(r.Bytes)/1e6, r.BPW, r.Quality)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per model")
	return cmd
}

// provenanceQuality summarises the quality a .upg's compressor measured.
func provenanceQuality(prov string) string {
	var p struct {
		Quality json.RawMessage `json:"quality"`
	}
	if prov == "" || json.Unmarshal([]byte(prov), &p) != nil || len(p.Quality) == 0 {
		return ""
	}
	var q struct {
		PPLRatio float64 `json:"ppl_ratio"`
		KLD      float64 `json:"kld_mean"`
		Top1     float64 `json:"top1_agreement"`
	}
	if json.Unmarshal(p.Quality, &q) != nil || q.PPLRatio == 0 {
		return "not measured"
	}
	return fmt.Sprintf("PPL ratio %.3f, KLD %.4f, top-1 %.1f%%", q.PPLRatio, q.KLD, 100*q.Top1)
}
