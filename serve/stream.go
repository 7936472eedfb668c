package serve

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// responder turns a request's events into its HTTP response: one JSON
// object, or server-sent events ending with "data: [DONE]".
type responder struct {
	s       *Server
	w       http.ResponseWriter
	rc      *http.ResponseController
	chat    bool
	p       params
	id      string
	created int64

	started    bool
	text       strings.Builder
	completion int
	chatLP     []tokenLogprob
	cmplLP     *completionLogprobs
	offset     int
	buf        bytes.Buffer
}

func (o *responder) tokenText(id int) (string, []int) {
	b := o.s.e.Tokenizer.TokenBytes(id)
	ints := make([]int, len(b))
	for i, c := range b {
		ints[i] = int(c)
	}
	return string(b), ints
}

func (o *responder) chatLogprob(ev event) tokenLogprob {
	tok, b := o.tokenText(ev.token)
	lp := tokenLogprob{Token: tok, Logprob: finiteLogprob(ev.logprob), Bytes: b, TopLogprobs: []topLogprob{}}
	for _, t := range ev.top {
		tt, tb := o.tokenText(t.Token)
		lp.TopLogprobs = append(lp.TopLogprobs, topLogprob{Token: tt, Logprob: finiteLogprob(t.Logprob), Bytes: tb})
	}
	return lp
}

func (o *responder) completionLogprob(dst *completionLogprobs, ev event) {
	tok, _ := o.tokenText(ev.token)
	dst.Tokens = append(dst.Tokens, tok)
	dst.TokenLogprobs = append(dst.TokenLogprobs, finiteLogprob(ev.logprob))
	top := map[string]float64{}
	for _, t := range ev.top {
		tt, _ := o.tokenText(t.Token)
		if _, dup := top[tt]; !dup {
			top[tt] = finiteLogprob(t.Logprob)
		}
	}
	dst.TopLogprobs = append(dst.TopLogprobs, top)
	dst.TextOffset = append(dst.TextOffset, o.offset)
	o.offset += len(tok)
}

// begin sends the stream's headers (and, for chat, the role chunk).
func (o *responder) begin() error {
	if o.started || !o.p.stream {
		return nil
	}
	o.started = true
	h := o.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	o.w.WriteHeader(http.StatusOK)
	if o.chat {
		empty := ""
		return o.send(o.chatChunk(chatDelta{Role: "assistant", Content: &empty}, nil, nil), true)
	}
	return o.rc.Flush()
}

func (o *responder) chatChunk(d chatDelta, lp *chatLogprobs, finish *string) *chatChunk {
	return &chatChunk{ID: o.id, Object: "chat.completion.chunk", Created: o.created, Model: o.s.cfg.ModelName, SystemFingerprint: fingerprint,
		Choices: []chatChunkChoice{{Delta: d, Logprobs: lp, FinishReason: finish}}}
}

func (o *responder) completionChunk(text string, lp *completionLogprobs, finish *string) *completionResponse {
	return &completionResponse{ID: o.id, Object: "text_completion", Created: o.created, Model: o.s.cfg.ModelName, SystemFingerprint: fingerprint,
		Choices: []completionChoice{{Text: text, Logprobs: lp, FinishReason: finish}}}
}

// fingerprint identifies the serving configuration, as OpenAI's system_fingerprint does.
const fingerprint = "upg"

// send writes one SSE event, flushing when asked.
func (o *responder) send(v any, flush bool) error {
	o.buf.Reset()
	o.buf.WriteString("data: ")
	enc := json.NewEncoder(&o.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	o.buf.WriteString("\n") // Encode ended the line; a blank line ends the event
	o.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := o.w.Write(o.buf.Bytes()); err != nil {
		return err
	}
	if flush {
		return o.rc.Flush()
	}
	return nil
}

// token handles one event that is not a failure.
func (o *responder) token(ev event) error {
	if ev.sampled {
		o.completion++
	}
	if !o.p.stream {
		o.text.WriteString(ev.text)
		if o.p.logprobs && ev.sampled {
			if o.chat {
				o.chatLP = append(o.chatLP, o.chatLogprob(ev))
			} else {
				if o.cmplLP == nil {
					o.cmplLP = &completionLogprobs{}
				}
				o.completionLogprob(o.cmplLP, ev)
			}
		}
		return nil
	}
	if err := o.begin(); err != nil {
		return err
	}
	withLP := o.p.logprobs && ev.sampled
	if ev.text == "" && !withLP {
		return nil
	}
	flush := !ev.done // the final chunk follows at once
	if o.chat {
		var lp *chatLogprobs
		if withLP {
			lp = &chatLogprobs{Content: []tokenLogprob{o.chatLogprob(ev)}, Refusal: nil}
		}
		text := ev.text
		return o.send(o.chatChunk(chatDelta{Content: &text}, lp, nil), flush)
	}
	var lp *completionLogprobs
	if withLP {
		lp = &completionLogprobs{}
		o.completionLogprob(lp, ev)
	}
	return o.send(o.completionChunk(ev.text, lp, nil), flush)
}

func (o *responder) usage(ev event) usage {
	return usage{PromptTokens: ev.prompt, CompletionTokens: ev.completion, TotalTokens: ev.prompt + ev.completion,
		PromptTokensDetails: promptTokensDetails{CachedTokens: ev.reused}}
}

// finish writes the end of a successful response.
func (o *responder) finish(ev event) error {
	reason := finishReason(ev.reason)
	u := o.usage(ev)
	if !o.p.stream {
		if o.chat {
			var lp *chatLogprobs
			if o.p.logprobs {
				lp = &chatLogprobs{Content: o.chatLP}
				if lp.Content == nil {
					lp.Content = []tokenLogprob{}
				}
			}
			writeJSON(o.w, http.StatusOK, chatResponse{ID: o.id, Object: "chat.completion", Created: o.created, Model: o.s.cfg.ModelName,
				SystemFingerprint: fingerprint, Usage: u,
				Choices: []chatChoice{{Message: chatMessageOut{Role: "assistant", Content: o.text.String()}, Logprobs: lp, FinishReason: reason}}})
			return nil
		}
		writeJSON(o.w, http.StatusOK, completionResponse{ID: o.id, Object: "text_completion", Created: o.created, Model: o.s.cfg.ModelName,
			SystemFingerprint: fingerprint, Usage: &u,
			Choices: []completionChoice{{Text: o.text.String(), Logprobs: o.cmplLP, FinishReason: &reason}}})
		return nil
	}
	if err := o.begin(); err != nil {
		return err
	}
	var err error
	if o.chat {
		err = o.send(o.chatChunk(chatDelta{}, nil, &reason), false)
	} else {
		err = o.send(o.completionChunk("", nil, &reason), false)
	}
	if err != nil {
		return err
	}
	if o.p.includeUsage {
		if o.chat {
			err = o.send(&chatChunk{ID: o.id, Object: "chat.completion.chunk", Created: o.created, Model: o.s.cfg.ModelName,
				SystemFingerprint: fingerprint, Choices: []chatChunkChoice{}, Usage: &u}, false)
		} else {
			err = o.send(&completionResponse{ID: o.id, Object: "text_completion", Created: o.created, Model: o.s.cfg.ModelName,
				SystemFingerprint: fingerprint, Choices: []completionChoice{}, Usage: &u}, false)
		}
		if err != nil {
			return err
		}
	}
	if _, err := o.w.Write([]byte("data: [DONE]\n\n")); err != nil {
		return err
	}
	return o.rc.Flush()
}

// fail reports an error: as the HTTP response when nothing was sent yet,
// else as an error event that ends the stream (without [DONE]).
func (o *responder) fail(e *apiError) {
	if !o.started {
		writeError(o.w, e)
		return
	}
	o.send(struct {
		Error *apiError `json:"error"`
	}{e}, true)
}
