// Command lookup-replay measures how often prompt-lookup drafts
// (engine.LookupDraft, upg's --lookup) would be kept on a model's own greedy
// text, and projects the decoding speed-up from given step costs.
//
//	go run ./tools/lookup-replay -model models/miniphi-29m.upg \
//	    -text ../shared/corpus/miniphi_eval_250k.txt -costs 2:1.4,3:1.9,5:3.0,9:5.2
//
// It decodes -tokens greedy tokens after each of -excerpts excerpts of
// -chars characters (spaced evenly over the text), once, without drafts.
// Greedy tokens do not depend on the drafts, so for each draft length N it
// then walks those tokens as a decoding with whole drafts of up to N tokens
// would (engine.Config.LookupWhole), or, for aN, as --lookup N does: the
// engine's DraftPlanner takes its share of each draft, learning the step
// costs from the steps it replays (one planner for all excerpts, as one
// engine). A step proposes the draft, keeps the run that matches the text,
// and adds the model's own token. It prints the kept share of drafted tokens,
// the share of generated tokens that came from drafts, the tokens per
// step, and tokens per unit of step cost, where a step of n fed tokens
// costs -costs' figure for the smallest listed n' ≥ n (1 for one token;
// beyond the list, proportionally).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/upg-ai/upg/engine"
)

func main() {
	model := flag.String("model", "models/miniphi-29m.upg", "model file")
	text := flag.String("text", "../shared/corpus/miniphi_eval_250k.txt", "text to take the prompts from")
	excerpts := flag.Int("excerpts", 40, "prompts")
	chars := flag.Int("chars", 1500, "characters per prompt")
	tokens := flag.Int("tokens", 200, "greedy tokens after each prompt")
	lengths := flag.String("n", "1,2,4,8,a8", "draft lengths to replay (aN: up to N, as the engine's DraftPlanner chooses)")
	costs := flag.String("costs", "2:1.4,3:1.9,5:3.0,9:5.2", "n:cost of a step of n fed tokens, against 1 for one token")
	flag.Parse()

	type cost struct {
		n int
		c float64
	}
	var cs []cost
	for _, f := range strings.Split(*costs, ",") {
		a, b, ok := strings.Cut(f, ":")
		n, err1 := strconv.Atoi(a)
		c, err2 := strconv.ParseFloat(b, 64)
		if !ok || err1 != nil || err2 != nil || n < 2 || c <= 0 {
			log.Fatalf("-costs: %q is not n:cost with n ≥ 2 and cost > 0", f)
		}
		cs = append(cs, cost{n, c})
	}
	slices.SortFunc(cs, func(a, b cost) int { return a.n - b.n })
	stepCost := func(n int) float64 {
		if n <= 1 {
			return 1
		}
		for _, c := range cs {
			if n <= c.n {
				return c.c
			}
		}
		last := cs[len(cs)-1]
		return last.c * float64(n) / float64(last.n)
	}

	body, err := os.ReadFile(*text)
	if err != nil {
		log.Fatal(err)
	}
	l, err := engine.Load(*model, engine.Options{Ctx: 2048, Device: "cpu"})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	type run struct {
		tokens []int
		from   int // the first token decoded after the prefill's
	}
	var runs []run
	stride := (len(body) - *chars) / max(*excerpts, 1)
	for i := range *excerpts {
		excerpt := strings.ToValidUTF8(string(body[i*stride:i*stride+*chars]), "")
		s, err := l.NewSequence(engine.Request{Prompt: l.EncodePrompt(excerpt), MaxTokens: *tokens, IgnoreEOS: true})
		if err != nil {
			log.Fatal(err)
		}
		for !s.Done() {
			if _, err := l.Step([]*engine.Sequence{s}, 0); err != nil {
				log.Fatal(err)
			}
		}
		toks := slices.Clone(s.Tokens())
		runs = append(runs, run{toks, len(toks) - s.Stats().GeneratedTokens + 1})
		l.Release(s)
	}
	fmt.Printf("%d excerpts of %d characters, %d greedy tokens each (%s)\n", *excerpts, *chars, *tokens, *model)
	fmt.Println("N (aN: up to N, DraftPlanner's choice)  kept/drafted  kept/token  tokens/step  speed-up at -costs")
	var draft []int
	for _, f := range strings.Split(*lengths, ",") {
		f = strings.TrimSpace(f)
		adaptive := strings.HasPrefix(f, "a")
		k, err := strconv.Atoi(strings.TrimPrefix(f, "a"))
		if err != nil || k < 1 {
			log.Fatalf("-n: %q", f)
		}
		planner := engine.NewDraftPlanner(1 + k)
		var drafted, kept, gen, steps int
		var spent float64
		for _, r := range runs {
			var offer engine.DraftOffer
			for pos := r.from; pos < len(r.tokens); {
				draft = engine.LookupDraft(draft, r.tokens[:pos], k)
				if adaptive && len(draft) > 0 {
					offer.Max = len(draft)
					draft = draft[:planner.Plan(nil, 1, []engine.DraftOffer{offer}, k)[0]]
				}
				j := 0
				for j < len(draft) && pos+j < len(r.tokens) && r.tokens[pos+j] == draft[j] {
					j++
				}
				adv := min(j+1, len(r.tokens)-pos)
				drafted, kept, gen, steps = drafted+len(draft), kept+min(j, adv), gen+adv, steps+1
				c := stepCost(1 + len(draft))
				spent += c
				planner.Observe(1+len(draft), c)
				if len(draft) > 0 {
					offer.Record.Add(len(draft), j)
					planner.Record(len(draft), j)
				}
				pos += adv
			}
		}
		fmt.Printf("%s  %.2f          %.2f        %.2f         %.2fx\n", f, float64(kept)/float64(max(drafted, 1)),
			float64(kept)/float64(gen), float64(gen)/float64(steps), float64(gen)/spent)
	}
}
