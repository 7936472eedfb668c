// Command synth-hf writes a synthetic Hugging Face checkpoint with Phi-4's
// shapes (or fewer layers): config.json, bf16 safetensors shards with random
// weights, and a tokenizer.json copied from a given file. It exists to
// measure the compressor's memory and throughput at full scale, since the
// real Phi-4 weights are not available here.
//
//	go run ./tools/synth-hf -layers 2 -out /tmp/phi4-2l -tokenizer ../shared/models/miniphi-29m/tokenizer.json
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/upg-ai/upg/tensor"
)

type spec struct {
	name  string
	shape []int
	norm  bool
}

func main() {
	layers := flag.Int("layers", 2, "number of transformer layers")
	out := flag.String("out", "", "output directory")
	tok := flag.String("tokenizer", "", "tokenizer.json to copy")
	hidden := flag.Int("hidden", 5120, "hidden size")
	ffn := flag.Int("ffn", 17920, "intermediate size")
	heads := flag.Int("heads", 40, "query heads")
	kvHeads := flag.Int("kv-heads", 10, "key/value heads")
	vocab := flag.Int("vocab", 100352, "vocabulary size")
	flag.Parse()
	if *out == "" || *tok == "" {
		log.Fatal("-out and -tokenizer are required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	hd := *hidden / *heads
	cfg := map[string]any{
		"architectures": []string{"Phi3ForCausalLM"}, "model_type": "phi3", "hidden_size": *hidden,
		"intermediate_size": *ffn, "num_hidden_layers": *layers, "num_attention_heads": *heads,
		"num_key_value_heads": *kvHeads, "vocab_size": *vocab, "rms_norm_eps": 1e-5, "rope_theta": 250000.0,
		"max_position_embeddings": 16384, "tie_word_embeddings": false, "bos_token_id": 100257, "eos_token_id": 100265,
		"hidden_act": "silu", "torch_dtype": "bfloat16",
	}
	write := func(name string, v any) {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	write("config.json", cfg)
	tb, err := os.ReadFile(*tok)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "tokenizer.json"), tb, 0o644); err != nil {
		log.Fatal(err)
	}

	// One shard for the embedding, one per layer, one for the head: like
	// real checkpoints, no shard is larger than a few GB.
	var shards [][]spec
	shards = append(shards, []spec{{"model.embed_tokens.weight", []int{*vocab, *hidden}, false}})
	for l := 0; l < *layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		shards = append(shards, []spec{
			{p + "input_layernorm.weight", []int{*hidden}, true},
			{p + "post_attention_layernorm.weight", []int{*hidden}, true},
			{p + "self_attn.qkv_proj.weight", []int{(*heads + 2**kvHeads) * hd, *hidden}, false},
			{p + "self_attn.o_proj.weight", []int{*hidden, *heads * hd}, false},
			{p + "mlp.gate_up_proj.weight", []int{2 * *ffn, *hidden}, false},
			{p + "mlp.down_proj.weight", []int{*hidden, *ffn}, false},
		})
	}
	shards = append(shards, []spec{{"model.norm.weight", []int{*hidden}, true}, {"lm_head.weight", []int{*vocab, *hidden}, false}})
	weightMap := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, sh := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := writeShard(filepath.Join(*out, name), sh, rng); err != nil {
			log.Fatal(err)
		}
		for _, s := range sh {
			weightMap[s.name] = name
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", name)
	}
	write("model.safetensors.index.json", map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
}

func writeShard(path string, specs []spec, rng *rand.Rand) error {
	header := map[string]any{}
	var off int64
	for _, s := range specs {
		n, _ := tensor.NumElements(s.shape)
		header[s.name] = map[string]any{"dtype": "BF16", "shape": s.shape, "data_offsets": []int64{off, off + int64(2*n)}}
		off += int64(2 * n)
	}
	hb, _ := json.Marshal(header)
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	binary.Write(w, binary.LittleEndian, uint64(len(hb)))
	w.Write(hb)
	var buf [2]byte
	for _, s := range specs {
		n, _ := tensor.NumElements(s.shape)
		for i := 0; i < n; i++ {
			v := float32(1)
			if !s.norm {
				v = float32(rng.NormFloat64() * 0.02)
				if rng.IntN(1000) == 0 { // a few outliers, as trained weights have
					v *= 8
				}
			}
			binary.LittleEndian.PutUint16(buf[:], tensor.F32ToBF16(v))
			w.Write(buf[:])
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
