package serve

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// responder turns a request's events into its HTTP response: one JSON
// object, or server-sent events ending with "data: [DONE]". A request for
// n choices has n sequences; their events arrive interleaved, each with
// its choice's index.
type responder struct {
	s       *Server
	w       http.ResponseWriter
	rc      *http.ResponseController
	chat    bool
	p       params
	id      string
	created int64

	started bool
	choices []choice
	buf     bytes.Buffer
}

// choice is the state of one of a request's n choices.
type choice struct {
	text       strings.Builder
	completion int
	chatLP     []tokenLogprob
	cmplLP     *completionLogprobs
	offset     int
	end        event // the final event, once the choice is done
	// a stream that may answer with a tool call holds its text back
	// (held, with its log-probabilities) until it knows (tools.go)
	held      strings.Builder
	heldLP    []tokenLogprob
	streaming bool // its text is not a call: streamed as it comes
}

// completion is the number of tokens generated for every choice so far.
func (o *responder) completion() int {
	n := 0
	for i := range o.choices {
		n += o.choices[i].completion
	}
	return n
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

func (o *responder) completionLogprob(c *choice, dst *completionLogprobs, ev event) {
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
	dst.TextOffset = append(dst.TextOffset, c.offset)
	c.offset += len(tok)
}

// begin sends the stream's headers (and, for chat, each choice's role
// chunk).
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
		for i := range o.choices {
			if err := o.send(o.chatChunk(i, chatDelta{Role: "assistant", Content: &empty}, nil, nil), i == len(o.choices)-1); err != nil {
				return err
			}
		}
		return nil
	}
	return o.rc.Flush()
}

func (o *responder) chatChunk(i int, d chatDelta, lp *chatLogprobs, finish *string) *chatChunk {
	return &chatChunk{ID: o.id, Object: "chat.completion.chunk", Created: o.created, Model: o.s.cfg.ModelName, SystemFingerprint: fingerprint,
		Choices: []chatChunkChoice{{Index: i, Delta: d, Logprobs: lp, FinishReason: finish}}}
}

func (o *responder) completionChunk(i int, text string, lp *completionLogprobs, finish *string) *completionResponse {
	return &completionResponse{ID: o.id, Object: "text_completion", Created: o.created, Model: o.s.cfg.ModelName, SystemFingerprint: fingerprint,
		Choices: []completionChoice{{Index: i, Text: text, Logprobs: lp, FinishReason: finish}}}
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

// token handles one event of choice i that is not a failure; a final
// event (done) ends the choice: in a stream, its chunk with the finish
// reason goes out.
func (o *responder) token(i int, ev event) error {
	c := &o.choices[i]
	if ev.sampled {
		c.completion++
	}
	if ev.done {
		c.end = ev
	}
	if !o.p.stream {
		c.text.WriteString(ev.text)
		if o.p.logprobs && ev.sampled {
			if o.chat {
				c.chatLP = append(c.chatLP, o.chatLogprob(ev))
			} else {
				if c.cmplLP == nil {
					c.cmplLP = &completionLogprobs{}
				}
				o.completionLogprob(c, c.cmplLP, ev)
			}
		}
		return nil
	}
	if o.chat && o.p.toolMode != toolsNone && !c.streaming {
		return o.toolToken(i, c, ev)
	}
	if err := o.delta(i, c, ev); err != nil {
		return err
	}
	if !ev.done || ev.reason == "cancelled" || ev.reason == "timeout" {
		return nil
	}
	reason := finishReason(ev.reason)
	if o.chat {
		return o.send(o.chatChunk(i, chatDelta{}, nil, &reason), len(o.choices) > 1)
	}
	return o.send(o.completionChunk(i, "", nil, &reason), len(o.choices) > 1)
}

// delta streams an event's text (and log-probability) as a chunk.
func (o *responder) delta(i int, c *choice, ev event) error {
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
		return o.send(o.chatChunk(i, chatDelta{Content: &text}, lp, nil), flush)
	}
	var lp *completionLogprobs
	if withLP {
		lp = &completionLogprobs{}
		o.completionLogprob(c, lp, ev)
	}
	return o.send(o.completionChunk(i, ev.text, lp, nil), flush)
}

// toolToken handles a streamed event of a choice that may be a tool call:
// its text is held back while it may still become one (always, when a call
// is required); text that cannot is sent and the choice streams from then
// on; at the end a call goes out as one tool_calls delta.
func (o *responder) toolToken(i int, c *choice, ev event) error {
	if err := o.begin(); err != nil {
		return err
	}
	c.held.WriteString(ev.text)
	if o.p.logprobs && ev.sampled {
		c.heldLP = append(c.heldLP, o.chatLogprob(ev))
	}
	var lp *chatLogprobs
	if len(c.heldLP) > 0 {
		lp = &chatLogprobs{Content: c.heldLP}
	}
	sendHeld := func(flush bool) error {
		text := c.held.String()
		if text == "" && lp == nil {
			return nil
		}
		return o.send(o.chatChunk(i, chatDelta{Content: &text}, lp, nil), flush)
	}
	if o.p.toolMode == toolsAuto && !mayBeCall(c.held.String()) {
		c.streaming = true
		if err := sendHeld(!ev.done); err != nil {
			return err
		}
	} else if !ev.done {
		return nil
	}
	if !ev.done || ev.reason == "cancelled" || ev.reason == "timeout" {
		return nil
	}
	reason := finishReason(ev.reason)
	if !c.streaming {
		if name, args, ok := o.p.parseCall(c.held.String()); ok {
			zero := 0
			d := chatDelta{ToolCalls: []toolCall{{Index: &zero, ID: newID("call_"), Type: "function", Function: toolCallFunction{Name: name, Arguments: args}}}}
			if err := o.send(o.chatChunk(i, d, lp, nil), false); err != nil {
				return err
			}
			reason = "tool_calls"
		} else if err := sendHeld(false); err != nil {
			return err
		}
	}
	return o.send(o.chatChunk(i, chatDelta{}, nil, &reason), len(o.choices) > 1)
}

// message is a finished choice's message: a tool call when tools were
// offered and its text is one, else its text.
func (o *responder) message(c *choice) (chatMessageOut, string) {
	text := c.text.String()
	reason := finishReason(c.end.reason)
	if o.p.toolMode != toolsNone {
		if name, args, ok := o.p.parseCall(text); ok {
			return chatMessageOut{Role: "assistant", ToolCalls: []toolCall{{ID: newID("call_"), Type: "function",
				Function: toolCallFunction{Name: name, Arguments: args}}}}, "tool_calls"
		}
	}
	return chatMessageOut{Role: "assistant", Content: &text}, reason
}

// usage counts the prompt once and every choice's generated tokens.
func (o *responder) usage() usage {
	first := o.choices[0].end
	u := usage{PromptTokens: first.prompt, PromptTokensDetails: promptTokensDetails{CachedTokens: first.reused}}
	for i := range o.choices {
		u.CompletionTokens += o.choices[i].end.completion
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// finish writes the end of a successful response, every choice done,
// with its usage u.
func (o *responder) finish(u usage) error {
	if !o.p.stream {
		if o.chat {
			res := chatResponse{ID: o.id, Object: "chat.completion", Created: o.created, Model: o.s.cfg.ModelName,
				SystemFingerprint: fingerprint, Usage: u, Choices: make([]chatChoice, len(o.choices))}
			for i := range o.choices {
				c := &o.choices[i]
				var lp *chatLogprobs
				if o.p.logprobs {
					lp = &chatLogprobs{Content: c.chatLP}
					if lp.Content == nil {
						lp.Content = []tokenLogprob{}
					}
				}
				msg, reason := o.message(c)
				res.Choices[i] = chatChoice{Index: i, Message: msg, Logprobs: lp, FinishReason: reason}
			}
			writeJSON(o.w, http.StatusOK, res)
			return nil
		}
		res := completionResponse{ID: o.id, Object: "text_completion", Created: o.created, Model: o.s.cfg.ModelName,
			SystemFingerprint: fingerprint, Usage: &u, Choices: make([]completionChoice, len(o.choices))}
		for i := range o.choices {
			c := &o.choices[i]
			reason := finishReason(c.end.reason)
			res.Choices[i] = completionChoice{Index: i, Text: c.text.String(), Logprobs: c.cmplLP, FinishReason: &reason}
		}
		writeJSON(o.w, http.StatusOK, res)
		return nil
	}
	if err := o.begin(); err != nil {
		return err
	}
	var err error
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
