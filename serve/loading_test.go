package serve

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestServeLoading: while the model loads, /health says "loading" and the
// API answers 503 model_loading with a Retry-After; after stop the same
// listener serves the real handler.
func TestServeLoading(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String()
	stop := ServeLoading(ln, "m")

	res, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var health map[string]any
	json.NewDecoder(res.Body).Decode(&health)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || health["status"] != "loading" || health["model"] != "m" {
		t.Errorf("/health while loading: %d %v", res.StatusCode, health)
	}
	res, err = http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error apiError `json:"error"`
	}
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "2" ||
		body.Error.Code == nil || *body.Error.Code != "model_loading" || body.Error.Type != "server_error" {
		t.Errorf("a request while loading: %d, Retry-After %q, %+v", res.StatusCode, res.Header.Get("Retry-After"), body.Error)
	}

	stop()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ready") })}
	go hs.Serve(ln)
	defer hs.Close()
	// a fresh connection: the loading server's were closed by its shutdown
	c := &http.Client{Transport: &http.Transport{}}
	res, err = c.Get(url + "/health")
	if err != nil {
		t.Fatalf("the listener after stop: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != "ready" {
		t.Errorf("after stop: %d %q, want the next server's answer", res.StatusCode, b)
	}
}
