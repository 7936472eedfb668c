// Command schema-probe times how an OpenAI-compatible server (upg serve)
// answers chat requests constrained by a JSON Schema whose pattern is n
// free runs of any character, ^(.{0,64}){n}$ written out: the schema's
// compile dominates, so it shows what a costly schema does to a request,
// and (with -c) what many requests with one new schema do at once.
//
//	upg serve --port 8391 &
//	go run ./tools/schema-probe -addr 127.0.0.1:8391 -runs 8        # one request
//	go run ./tools/schema-probe -addr 127.0.0.1:8391 -runs 4 -c 8   # eight at once
//
// Each request prints its status and seconds to the whole response.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "the server's host:port")
	runs := flag.Int("runs", 8, "runs of .{0,64} in the pattern")
	conc := flag.Int("c", 1, "requests sent at once")
	maxTokens := flag.Int("max-tokens", 8, "tokens a request generates")
	flag.Parse()
	schema := map[string]any{"type": "string", "pattern": "^" + strings.Repeat(".{0,64}", *runs) + "$"}
	body, err := json.Marshal(map[string]any{
		"model": "m", "max_tokens": *maxTokens, "temperature": 0,
		"messages":        []map[string]string{{"role": "user", "content": "hi"}},
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "s", "schema": schema}},
	})
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range *conc {
		wg.Go(func() {
			t0 := time.Now()
			resp, err := http.Post("http://"+*addr+"/v1/chat/completions", "application/json", bytes.NewReader(body))
			if err != nil {
				log.Printf("request %d: %v", i, err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			msg := ""
			if resp.StatusCode != http.StatusOK {
				msg = " " + strings.TrimSpace(string(b[:min(len(b), 160)]))
			}
			fmt.Printf("runs %d request %d: HTTP %d in %.2f s%s\n", *runs, i, resp.StatusCode, time.Since(t0).Seconds(), msg)
		})
	}
	wg.Wait()
}
