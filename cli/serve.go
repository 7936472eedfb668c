package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/internal/units"
	"github.com/upg-ai/upg/serve"
)

type serveFlags struct {
	host, port      string
	kvBudget        string
	maxBatch        int
	stepTokens      int
	apiKey          string
	cors            []string
	maxQueue        int
	timeout         time.Duration
	shutdownTimeout time.Duration
	maxBody         string
	name            string
	noPrefixCache   bool
}

func newServeCmd() *cobra.Command {
	var mf modelFlags
	var sf serveFlags
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve a model over an OpenAI-compatible HTTP API",
		Long: `Serve a model over HTTP with OpenAI's API: POST /v1/chat/completions and
/v1/completions (streaming or not), GET /v1/models, plus GET /health and
GET /metrics (Prometheus). Requests are batched continuously: new ones join
the running batch between steps, long prompts are prefilled in chunks next
to other requests' decoding, and the KV cache is a pool of blocks under a
byte budget (--kv-budget; by default a share of the free memory), with
repeated prompt prefixes reused. SIGTERM or Ctrl-C stops accepting requests,
lets running ones finish (--shutdown-timeout), and exits 0.

The API key may also come from the UPG_API_KEY environment variable.`,
		Example: `  upg serve                                   # the demo model on 127.0.0.1:8080
  upg serve --model phi4.upg --host 0.0.0.0 --port 8000 --api-key secret
  upg serve --kv-budget 2GiB --max-batch 16 --cors http://localhost:3000

  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"model":"miniphi-29m","messages":[{"role":"user","content":"Hello"}],"max_tokens":32}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if logLevel.Level() > slog.LevelInfo {
				logLevel.Set(slog.LevelInfo)
			}
			return runServe(cmd.Context(), &mf, &sf)
		},
	}
	mf.register(cmd)
	mf.registerLookup(cmd)
	fl := cmd.Flags()
	fl.StringVar(&sf.host, "host", "127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
	fl.StringVar(&sf.port, "port", "8080", "TCP port to listen on (0 = any free port)")
	fl.StringVar(&sf.kvBudget, "kv-budget", "", "KV cache size, e.g. 512MiB or 2GB (default: half of the memory left after the weights — free device memory on a GPU, available host memory on the CPU — at most --max-batch full contexts)")
	fl.IntVar(&sf.maxBatch, "max-batch", 16, "most sequences decoded together")
	fl.IntVar(&sf.stepTokens, "step-tokens", engine.PrefillBlock, "most tokens in one forward step (prompt chunks and decode tokens together)")
	fl.StringVar(&sf.apiKey, "api-key", "", "require this key as 'Authorization: Bearer KEY' (default: $UPG_API_KEY; none)")
	fl.StringArrayVar(&sf.cors, "cors", nil, "allow browser requests from this origin (repeatable; * for any)")
	fl.IntVar(&sf.maxQueue, "max-queue", 256, "most requests waiting for a slot; more are refused with 429")
	fl.DurationVar(&sf.timeout, "timeout", 10*time.Minute, "longest a request may take, from arrival to its last token")
	fl.DurationVar(&sf.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long running requests may finish before they are cancelled")
	fl.StringVar(&sf.maxBody, "max-body", "4MiB", "largest request body")
	fl.StringVar(&sf.name, "name", "", "model id in the API (default: the model file's name)")
	fl.BoolVar(&sf.noPrefixCache, "no-prefix-cache", false, "do not reuse cached KV blocks of repeated prompt prefixes")
	return cmd
}

func runServe(ctx context.Context, mf *modelFlags, sf *serveFlags) error {
	if err := lookupRange(mf.lookup); err != nil {
		return err
	}
	if sf.maxBatch < 1 {
		return usagef("--max-batch %d must be ≥ 1", sf.maxBatch)
	}
	if sf.stepTokens < 1 {
		return usagef("--step-tokens %d must be ≥ 1", sf.stepTokens)
	}
	if sf.maxQueue < 1 {
		return usagef("--max-queue %d must be ≥ 1", sf.maxQueue)
	}
	maxBody, err := units.ParseSize(sf.maxBody)
	if err != nil || maxBody < 1 {
		return usagef("--max-body: %v", err)
	}
	var budget int64
	if sf.kvBudget != "" {
		if budget, err = units.ParseSize(sf.kvBudget); err != nil || budget <= 0 {
			return usagef("--kv-budget %q: want a positive size such as 512MiB", sf.kvBudget)
		}
	}
	if _, err := strconv.Atoi(sf.port); err != nil {
		return usagef("--port %q must be a number", sf.port)
	}
	kvType, err := parseKVCache(mf.kv)
	if err != nil {
		return err
	}
	if mf.ctx < 0 {
		return usagef("--ctx %d must be ≥ 0 (0 = the model's context, at most 4096)", mf.ctx)
	}
	if err := checkThreads(mf.threads); err != nil {
		return err
	}
	if err := checkDevice(mf.device); err != nil {
		return err
	}
	device, gpuLayers, err := placement(mf.device, mf.gpu)
	if err != nil {
		return err
	}
	apiKey := sf.apiKey
	if apiKey == "" {
		apiKey = os.Getenv("UPG_API_KEY")
	}
	path, err := modelPath(mf.path)
	if err != nil {
		return err
	}
	if path == "" {
		if path, err = demoModelPath(); err != nil {
			return err
		}
	}

	// Size the KV budget from the model's shape before allocating it.
	ck, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	c := ck.Config
	ck.Close()
	ctxLen := mf.ctx
	if ctxLen <= 0 {
		ctxLen = min(4096, max(c.MaxPositions, 512))
	}
	if c.MaxPositions > 0 && ctxLen > c.MaxPositions {
		if mf.ctx > 0 && !mf.longCtx {
			return usagef("--ctx %d is more than the %d positions %s was trained for; use --ctx %d or less, or add --allow-long-ctx to go past it (the text degrades)",
				mf.ctx, c.MaxPositions, path, c.MaxPositions)
		}
		if !mf.longCtx {
			ctxLen = c.MaxPositions
		}
	}
	if budget == 0 {
		budget = -1 // from the memory left after the weights: the GPU's, or the host's
	}
	name := sf.name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(filepath.Clean(path)), filepath.Ext(path))
	}
	// The port before the model: one in use fails now, not after a load of
	// seconds to minutes, and until the model is ready every request is
	// answered 503 "loading".
	ln, err := net.Listen("tcp", net.JoinHostPort(sf.host, sf.port))
	if err != nil {
		return err
	}
	stopLoading := serve.ServeLoading(ln, name)
	slog.Info("loading", "url", "http://"+ln.Addr().String(), "model", path)
	start := time.Now()
	l, err := engine.Load(path, engine.Options{Threads: mf.threads, Device: device, GPULayers: gpuLayers, Ctx: ctxLen, KVCache: kvType, AllowLongCtx: mf.longCtx,
		MaxSeqs: sf.maxBatch, StepTokens: sf.stepTokens, KVBudget: budget, PrefixCache: !sf.noPrefixCache,
		Lookup: mf.lookup})
	if err != nil {
		stopLoading()
		ln.Close()
		return err
	}
	defer l.Close()
	pool := l.Pool
	positions := pool.Blocks() * pool.BlockSize()
	slog.Info("model loaded", "model", name, "path", path, "arch", c.Arch, "backend", engine.BackendName(l.Model), "gpu_layers", l.GPULayers, "context", l.Capacity(),
		"elapsed", time.Since(start).Round(time.Millisecond))
	slog.Info("kv cache", "budget_bytes", pool.Bytes(), "budget", fmt.Sprintf("%.1f MiB", float64(pool.Bytes())/(1<<20)), "why", l.KVBudgetWhy,
		"type", kvType.String(), "blocks", pool.Blocks(), "block_positions", pool.BlockSize(), "positions", positions,
		"full_contexts", fmt.Sprintf("%.1f", float64(positions)/float64(l.Capacity())), "prefix_cache", !sf.noPrefixCache)

	srv := serve.New(l.Engine, serve.Config{ModelName: name, APIKey: apiKey, CORSOrigins: sf.cors, MaxQueue: sf.maxQueue,
		MaxBatch: sf.maxBatch, MaxBodyBytes: maxBody, RequestTimeout: sf.timeout, Logger: slog.Default()})
	stopLoading()
	slog.Info("listening", "url", "http://"+ln.Addr().String(), "max_batch", sf.maxBatch, "step_tokens", l.Config().StepTokens,
		"api_key", apiKey != "", "cors", sf.cors)

	if ctx == nil {
		ctx = context.Background()
	}
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		srv.Close()
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case <-sigCtx.Done():
	}
	stop() // a second signal kills the process
	st := srv.Stats()
	slog.Info("shutting down", "running", st.Running, "waiting", st.Waiting, "grace", sf.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), sf.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		slog.Warn("shutdown", "err", err)
	}
	<-errc
	slog.Info("stopped")
	return nil
}
