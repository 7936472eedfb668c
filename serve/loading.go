package serve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// errLoading answers every request while the model loads.
var errLoading = &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: strp("model_loading"),
	Message: "the model is loading; retry shortly", RetryAfter: 2}

// ServeLoading answers every request on ln with 503 while the model loads:
// GET /health with {"status": "loading"}, everything else with the
// OpenAI-style error model_loading and a Retry-After header (llama.cpp's
// server does the same). So the port is taken, and a port in use reported,
// before the load, which takes seconds to minutes for a large model; and a
// client sees "loading" instead of a refused connection. stop ends it and
// leaves ln open and ready for Server.Serve. Listeners that cannot take an
// accept deadline (not TCP or Unix) are left alone: stop does nothing.
func ServeLoading(ln net.Listener, modelName string) (stop func()) {
	dl, ok := ln.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return func() {}
	}
	pl := &pausedListener{Listener: ln, dl: dl}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "loading", "model": modelName})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, errLoading) })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		hs.Serve(pl)
		close(done)
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx) // closes pl: its pending Accept returns
		<-done
		dl.SetDeadline(time.Time{})
	}
}

// pausedListener is ln for the loading server: its Close ends a pending
// Accept by a deadline in the past instead of closing ln, so that the real
// server can take ln over.
type pausedListener struct {
	net.Listener
	dl      interface{ SetDeadline(time.Time) error }
	stopped atomic.Bool
}

func (l *pausedListener) Accept() (net.Conn, error) {
	if l.stopped.Load() {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil && l.stopped.Load() {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, net.ErrClosed
		}
	}
	return c, err
}

func (l *pausedListener) Close() error {
	l.stopped.Store(true)
	return l.dl.SetDeadline(time.Now())
}
