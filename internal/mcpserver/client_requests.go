package mcpserver

//lint:file-ignore SA1019 sampling is deprecated from protocol 2026-07-28 (SEP-2577) but the relay offers it as an answer provider; it is only sent to sessions on older protocols.

// Requests from the relay to a connected client: elicitation (asking the
// person at the client, for asks routed to a human) and sampling (asking
// the client's model, the Answer Runner's "sampling" provider). Both go to
// the first connected session whose client declared the capability in
// initialize. Sessions on protocol 2026-07-28 or later are never chosen:
// that protocol forbids server-initiated requests outside the multi
// round-trip flow of a tool call, and the SDK refuses to send them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Errors of Elicit and Sample.
var (
	// ErrNoCapableClient means no connected session can take the request:
	// none declared the capability, or every one that did went away while
	// it was being asked. Callers map it to their own "nobody to ask"
	// error; the CLI maps it to answer.ErrNoElicitor for Elicit, so that
	// the ask waits for asks_answer or POST /answers.
	ErrNoCapableClient = errors.New("no connected MCP client declared the capability")
)

// DefaultSampleMaxTokens is the maxTokens of a sampling request made with
// maxTokens zero.
const DefaultSampleMaxTokens = 1024

// statelessProtocol is the first protocol version (SEP-2575/SEP-2322) in
// which a server may not send elicitation/create or sampling/createMessage
// on its own. Protocol versions are dates, so they compare as strings.
const statelessProtocol = "2026-07-28"

// SampleMessage is one turn of a sampling conversation.
type SampleMessage struct {
	// Role is "user" or "assistant".
	Role    string
	Content string
}

// SampleResult is the client model's reply to Sample.
type SampleResult struct {
	Text string
	// Model is the model that answered, as the client reports it.
	Model string
	// InputTokens and OutputTokens are the token counts the client reports
	// in the result's _meta ("usage": {"inputTokens", "outputTokens"}, or
	// the snake_case forms); MCP has no standard field for them, so they
	// are usually 0.
	InputTokens  int
	OutputTokens int
}

// CanElicit reports whether a connected session can be asked to elicit.
func (s *Server) CanElicit() bool { return len(s.sessionsWhere(canElicit)) > 0 }

// CanSample reports whether a connected session can be asked to sample.
func (s *Server) CanSample() bool { return len(s.sessionsWhere(canSample)) > 0 }

// Elicit asks the person at the first connected client that declared the
// elicitation capability (form mode) to fill in a form: message is shown
// with the fields of schema, a flat object JSON Schema. It returns the
// person's action ("accept", "decline" or "cancel") and, on accept, the
// form's content, validated against schema by the SDK. How long to wait
// comes from ctx. If that client goes away before answering, the next
// capable one is asked. With no capable session it returns an error
// wrapping ErrNoCapableClient.
//
// Elicit implements answer.Elicitor once ErrNoCapableClient is mapped to
// answer.ErrNoElicitor.
func (s *Server) Elicit(ctx context.Context, message string, schema json.RawMessage) (action string, content map[string]any, err error) {
	params := &mcp.ElicitParams{Mode: "form", Message: message}
	if len(schema) > 0 {
		params.RequestedSchema = schema
	}
	var res *mcp.ElicitResult
	err = s.request(ctx, "elicitation", canElicit, func(ctx context.Context, ss *mcp.ServerSession) (err error) {
		res, err = ss.Elicit(ctx, params)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return res.Action, res.Content, nil
}

// Sample asks the model of the first connected client that declared the
// sampling capability to reply to messages, with system as the system
// prompt and at most maxTokens tokens (DefaultSampleMaxTokens when zero).
// The reply must be text. How long to wait comes from ctx. With no
// capable session it returns an error wrapping ErrNoCapableClient.
func (s *Server) Sample(ctx context.Context, system string, messages []SampleMessage, maxTokens int) (*SampleResult, error) {
	if maxTokens <= 0 {
		maxTokens = DefaultSampleMaxTokens
	}
	params := &mcp.CreateMessageParams{
		SystemPrompt: system,
		MaxTokens:    int64(maxTokens),
		Messages:     make([]*mcp.SamplingMessage, 0, len(messages)),
	}
	for i, m := range messages {
		role := mcp.Role(m.Role)
		if role != "user" && role != "assistant" {
			return nil, fmt.Errorf("sample: message %d: role %q is neither user nor assistant", i, m.Role)
		}
		params.Messages = append(params.Messages, &mcp.SamplingMessage{Role: role, Content: &mcp.TextContent{Text: m.Content}})
	}
	var res *mcp.CreateMessageResult
	err := s.request(ctx, "sampling", canSample, func(ctx context.Context, ss *mcp.ServerSession) (err error) {
		res, err = ss.CreateMessage(ctx, params)
		return err
	})
	if err != nil {
		return nil, err
	}
	text, ok := res.Content.(*mcp.TextContent)
	if !ok {
		return nil, fmt.Errorf("sample: the client replied with %T content, not text", res.Content)
	}
	in, out := usageOf(res.Meta)
	return &SampleResult{Text: text.Text, Model: res.Model, InputTokens: in, OutputTokens: out}, nil
}

// request calls send with each connected session that can, in order,
// until one answers or fails for a reason other than having gone away.
// send's context also ends when Run starts closing that session, since the
// SDK's close waits for requests in flight.
func (s *Server) request(ctx context.Context, what string, can func(*mcp.InitializeParams) bool, send func(context.Context, *mcp.ServerSession) error) error {
	sessions := s.sessionsWhere(can)
	if len(sessions) == 0 {
		return fmt.Errorf("%s: %w", what, ErrNoCapableClient)
	}
	var gone error
	for _, ss := range sessions {
		err := s.sendTo(ctx, ss, send)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !(peerGone(err) || errors.Is(err, errSessionClosing)) {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.log.Info("client went away during a request; trying the next one", "request", what, "session", ss.ID(), "err", err)
		gone = err
	}
	return fmt.Errorf("%s: %w (the last one: %v)", what, ErrNoCapableClient, gone)
}

// sessionsWhere returns the connected sessions, in connection order, that
// negotiated a protocol allowing server-initiated requests and whose
// initialize parameters satisfy can.
func (s *Server) sessionsWhere(can func(*mcp.InitializeParams) bool) []*mcp.ServerSession {
	var out []*mcp.ServerSession
	for ss := range s.mcp.Sessions() {
		p := ss.InitializeParams()
		if p == nil || p.Capabilities == nil || p.ProtocolVersion >= statelessProtocol {
			continue
		}
		if can(p) {
			out = append(out, ss)
		}
	}
	return out
}

// canElicit reports whether a client declared form-mode elicitation: an
// elicitation capability that does not declare url mode alone (an empty
// one means form mode, as before protocol 2025-11-25).
func canElicit(p *mcp.InitializeParams) bool {
	e := p.Capabilities.Elicitation
	return e != nil && (e.Form != nil || e.URL == nil)
}

// canSample reports whether a client declared sampling.
func canSample(p *mcp.InitializeParams) bool {
	return p.Capabilities.Sampling != nil
}

// usageOf reads token counts from a sampling result's _meta, where some
// clients report them; absent or malformed counts are 0.
func usageOf(meta mcp.Meta) (in, out int) {
	usage, _ := meta["usage"].(map[string]any)
	count := func(keys ...string) int {
		for _, k := range keys {
			if n, ok := usage[k].(float64); ok && n >= 0 && n <= math.MaxInt32 && n == math.Trunc(n) {
				return int(n)
			}
		}
		return 0
	}
	return count("inputTokens", "input_tokens"), count("outputTokens", "output_tokens")
}

// sendTo runs send on ss with a context that ends with ctx or when the
// session starts closing, whichever comes first.
// A request cut short by the closing session fails with errSessionClosing,
// which request treats like a client that went away.
func (s *Server) sendTo(ctx context.Context, ss *mcp.ServerSession, send func(context.Context, *mcp.ServerSession) error) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.closingContext(ss), func() { cancel(errSessionClosing) })
	defer stop()
	err := send(rctx, ss)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(rctx), errSessionClosing) {
		return fmt.Errorf("%w: %w", errSessionClosing, err)
	}
	return err
}

// errSessionClosing is the cause of a client request cut short because its
// session is being closed.
var errSessionClosing = errors.New("the MCP session is closing")

// closingContext returns the context that ends when Run starts closing ss
// (a session Run does not own: one that never ends this way).
func (s *Server) closingContext(ss *mcp.ServerSession) context.Context {
	s.closingMu.Lock()
	defer s.closingMu.Unlock()
	if c, ok := s.closing[ss]; ok {
		return c.ctx
	}
	return context.Background()
}

// trackRequests registers ss, run by Run, so that closeRequests can end
// the requests sent to its client.
func (s *Server) trackRequests(ss *mcp.ServerSession) {
	ctx, cancel := context.WithCancel(context.Background())
	s.closingMu.Lock()
	s.closing[ss] = sessionClosing{ctx, cancel}
	s.closingMu.Unlock()
}

// closeRequests cancels the requests in flight to ss and forgets it.
func (s *Server) closeRequests(ss *mcp.ServerSession) {
	s.closingMu.Lock()
	c, ok := s.closing[ss]
	delete(s.closing, ss)
	s.closingMu.Unlock()
	if ok {
		c.cancel()
	}
}

type sessionClosing struct {
	ctx    context.Context
	cancel context.CancelFunc
}
