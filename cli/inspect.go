package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/tokenizer"
)

func newTokenizeCmd() *cobra.Command {
	var path, file string
	var noSpecial bool
	cmd := &cobra.Command{
		Use:   "tokenize --model PATH [--file F | TEXT | -]",
		Short: "Print the token ids of a text, space-separated",
		Long: `Tokenize TEXT (or the contents of --file, or standard input: "-", or no TEXT
with input piped in) and print the token ids on one line.
PATH may be a model directory, a .gguf, a .upg, a tokenizer.json or a .tiktoken
rank file. Special tokens written in the text (like <|im_start|>) are
recognised, and BOS is added when the tokenizer is configured to add it.`,
		Example: `  upg tokenize --model ./Phi-4 "Hello world"
  upg tokenize --model cl100k_base.tiktoken --file notes.txt
  cat notes.txt | upg tokenize --model cl100k_base.tiktoken -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := promptText(args, file)
			if err != nil {
				if _, ok := err.(usageError); ok && strings.HasPrefix(err.Error(), "no prompt") {
					return usagef("nothing to tokenize: give TEXT, --file FILE, or - to read standard input")
				}
				return err
			}
			if path == "" {
				p, err := demoModelPath()
				if err != nil {
					return err
				}
				path = p
			}
			if path, err = modelPath(path); err != nil {
				return err
			}
			tok, err := loadTokenizer(path)
			if err != nil {
				return err
			}
			ids := tok.Encode(text, !noSpecial, !noSpecial)
			parts := make([]string, len(ids))
			for i, id := range ids {
				parts[i] = fmt.Sprint(id)
			}
			fmt.Println(strings.Join(parts, " "))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "model", "m", "", "model or tokenizer file (default: the bundled demo model)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the text from this file (\"-\" = standard input)")
	cmd.Flags().BoolVar(&noSpecial, "no-special", false, "add no BOS and treat special-token text as plain text")
	return cmd
}

// loadTokenizer accepts tokenizer files and any model format.
func loadTokenizer(path string) (tokenizer.Tokenizer, error) {
	if strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".tiktoken") {
		return tokenizer.Load(path)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if _, err := os.Stat(path + "/config.json"); err != nil {
			return tokenizer.Load(path) // a tokenizer-only directory
		}
	}
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return ck.Tokenizer()
}

func newInspectCmd() *cobra.Command {
	var asJSON, tensors bool
	cmd := &cobra.Command{
		Use:   "inspect [flags] PATH",
		Short: "Show a model's architecture, shapes, encodings, size and tokenizer",
		Example: `  upg inspect models/miniphi-29m.upg
  upg inspect --tensors ../shared/models/miniphi-29m
  upg inspect --json stories260K.gguf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := modelPath(args[0])
			if err != nil {
				return err
			}
			ck, err := checkpoint.Open(path)
			if err != nil {
				return err
			}
			defer ck.Close()
			var infos []checkpoint.TensorInfo
			var bytes int64
			for _, n := range ck.Tensors.Names() {
				ti, _ := ck.Tensors.Info(n)
				infos = append(infos, ti)
				bytes += ti.Bytes
			}
			params := ck.NumParams()
			tokDesc := "none"
			tok, tokErr := ck.Tokenizer()
			if tokErr == nil {
				tokDesc = fmt.Sprintf("%d tokens, BOS %d, EOS %v", tok.VocabSize(), tok.BOS(), tok.EOS())
			} else {
				tokDesc = "error: " + tokErr.Error()
			}
			if asJSON {
				out := map[string]any{
					"path": ck.Path, "format": ck.Format, "config": ck.Config, "parameters": params,
					"tensor_bytes": bytes, "bits_per_weight": float64(bytes*8) / float64(max(params, 1)),
					"tokenizer": tokDesc, "tensors": infos, "metadata": ck.Metadata,
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			c := ck.Config
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "path\t%s\nformat\t%s\narchitecture\t%s (%s)\n", ck.Path, ck.Format, c.HFArchitecture, c.Arch)
			fmt.Fprintf(w, "layers\t%d\nhidden\t%d\nffn\t%d\nheads\t%d (kv %d, head dim %d)\nvocab\t%d\n", c.Layers, c.Hidden, c.FFN, c.Heads, c.KVHeads, c.HeadDim, c.Vocab)
			fmt.Fprintf(w, "rope\ttheta %g, %d dims%s\ncontext\t%d\ntied embeddings\t%v\n", c.RopeTheta, c.RopeDim, map[bool]string{true: ", interleaved"}[c.RopeInterleave], c.MaxPositions, c.TieEmbeddings)
			fmt.Fprintf(w, "parameters\t%d (%.2fM)\n", params, float64(params)/1e6)
			fmt.Fprintf(w, "tensor data\t%d bytes (%.3f bits/weight; fp32 would be %d bytes, %.2fx)\n", bytes, float64(bytes*8)/float64(max(params, 1)), params*4, float64(params*4)/float64(max(bytes, 1)))
			fmt.Fprintf(w, "tokenizer\t%s\n", tokDesc)
			if ck.ChatTemplate != "" && tokErr == nil {
				fmt.Fprintf(w, "chat template\t%s\n", ck.Template(tok).Name)
			}
			for _, k := range sortedKeys(ck.Metadata) {
				fmt.Fprintf(w, "%s\t%s\n", k, ck.Metadata[k])
			}
			w.Flush()
			if tensors {
				fmt.Println()
				w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "tensor\tshape\tencoding\tbytes\tbits/weight")
				for _, ti := range infos {
					n := int64(1)
					for _, d := range ti.Shape {
						n *= int64(d)
					}
					fmt.Fprintf(w, "%s\t%v\t%s\t%d\t%.3f\n", ti.Name, ti.Shape, ti.Encoding, ti.Bytes, float64(ti.Bytes*8)/float64(max(n, 1)))
				}
				w.Flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&tensors, "tensors", false, "list every tensor")
	return cmd
}
