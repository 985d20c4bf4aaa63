package sdk

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// fakeRelay implements the relay's Ask/Answer HTTP contract at the wire:
// it checks method, path and bearer token, recomputes the context hash of
// every posted envelope, and answers long polls with 204s, dropped
// connections or an answer, as a test scripts it.
type fakeRelay struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	// posted receives every ask the relay accepts; polled a signal on every
	// long poll it receives.
	posted chan relaytype.Ask
	polled chan struct{}

	mu sync.Mutex
	// postPlan scripts the responses to the first POSTs; once it runs out
	// asks are accepted.
	postPlan []step
	// pollPlan scripts the responses to the first long polls; once it runs
	// out the poll is answered (or held, if hold is set).
	pollPlan []step
	hold     bool
	// answer makes the answer to an ask. Defaults to an attested ANSWERED.
	answer func(relaytype.Ask) relaytype.AnswerRecord
	asks   map[string]askEntry
	pub    ed25519.PublicKey // served at GET /attestation-key when set
	// signer signs the runner answers the relay serves unsigned, as the
	// real relay's runner does, unless unsigned is set.
	signer    ed25519.PrivateKey
	unsigned  bool
	postBody  [][]byte
	pollCount int
}

type askEntry struct {
	ask relaytype.Ask
	raw []byte
}

// step is one scripted response.
type step struct {
	status int    // an HTTP status, with an error body if code is set
	code   string // error code of the body
	drop   bool   // close the connection without a response
	cut    bool   // send a 200 whose body is cut short, then close
}

func newFakeRelay(t *testing.T) *fakeRelay {
	t.Helper()
	_, signer, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	f := &fakeRelay{
		t:      t,
		token:  "job-token-" + uuid.NewString(),
		posted: make(chan relaytype.Ask, 16),
		polled: make(chan struct{}, 256),
		asks:   map[string]askEntry{},
		signer: signer,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /asks", f.postAsk)
	mux.HandleFunc("GET /asks/{id}/answer", f.getAnswer)
	mux.HandleFunc("GET /attestation-key", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		pub := f.pub
		f.mu.Unlock()
		if pub == nil {
			http.NotFound(w, nil)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"alg": "Ed25519", "keyId": relaytype.KeyID(pub),
			"publicKey": base64.StdEncoding.EncodeToString(pub)})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a client for f with env as its whole environment,
// f's attestation key and millisecond backoffs.
func (f *fakeRelay) client(env map[string]string) *Client {
	e := testEnv(env)
	return &Client{
		Origin:      f.srv.URL,
		Token:       f.token,
		HTTPClient:  f.srv.Client(),
		Env:         e.lookup,
		Environ:     e.environ,
		AnswerKey:   f.signer.Public().(ed25519.PublicKey),
		backoffBase: time.Millisecond,
		backoffCap:  4 * time.Millisecond,
	}
}

func (f *fakeRelay) next(plan *[]step) (step, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(*plan) == 0 {
		return step{}, false
	}
	s := (*plan)[0]
	*plan = (*plan)[1:]
	return s, true
}

func (f *fakeRelay) postAsk(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.postBody = append(f.postBody, raw)
	f.mu.Unlock()
	if !f.authorized(w, r) {
		return
	}
	if s, ok := f.next(&f.postPlan); ok {
		f.play(w, s)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "INVALID_REQUEST", "content type "+ct, "")
		return
	}
	var ask relaytype.Ask
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ask); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", err.Error(), "")
		return
	}
	switch {
	case ask.Type != "Ask":
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "type must be Ask", "type")
		return
	case uuid.Validate(ask.AskID) != nil:
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "not a uuid", "ask_id")
		return
	case ask.JobID == "":
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "job_id: required", "job_id")
		return
	case ask.StepID == "":
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "step_id: required", "step_id")
		return
	case !ask.AskType.Valid():
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "unknown ask type", "ask_type")
		return
	case len(ask.ContextEnvelope) == 0:
		writeError(w, http.StatusBadRequest, "E_NO_CONTEXT_ENVELOPE", "context envelope missing", "context_envelope")
		return
	}
	hash, err := relaytype.ContextHash(ask.ContextEnvelope)
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", err.Error(), "context_envelope")
		return
	}
	if hash != ask.ContextHash {
		writeError(w, http.StatusBadRequest, "E_CONTEXT_MISMATCH", "context_hash "+ask.ContextHash+" != "+hash, "context_hash")
		return
	}

	status := http.StatusAccepted
	f.mu.Lock()
	if prev, ok := f.asks[ask.AskID]; ok {
		if !bytes.Equal(prev.raw, raw) {
			f.mu.Unlock()
			writeError(w, http.StatusConflict, "CONFLICT", "ask id already used with a different payload", "ask_id")
			return
		}
		status = http.StatusOK
	}
	f.asks[ask.AskID] = askEntry{ask: ask, raw: raw}
	f.mu.Unlock()
	if status == http.StatusAccepted {
		f.posted <- ask
	}

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/asks/"+ask.AskID+"/answer")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(relaytype.AskRecord{
		AskID: ask.AskID, JobID: ask.JobID, StepID: ask.StepID, AskType: ask.AskType,
		Prompt: ask.Prompt, ContextHash: ask.ContextHash, ContextEnvelope: ask.ContextEnvelope,
		Status: relaytype.StatusPending, Route: "runner", CreatedAt: time.Now(),
	})
}

func (f *fakeRelay) getAnswer(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	if r.URL.Query().Get("wait") == "" {
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "wait missing", "wait")
		return
	}
	f.mu.Lock()
	entry, ok := f.asks[r.PathValue("id")]
	f.pollCount++
	answer, unsigned := f.answer, f.unsigned
	f.mu.Unlock()
	select {
	case f.polled <- struct{}{}:
	default:
	}
	if !ok {
		writeError(w, http.StatusNotFound, "ASK_NOT_FOUND", "no such ask", "")
		return
	}
	if s, ok := f.next(&f.pollPlan); ok {
		f.play(w, s)
		return
	}
	if f.hold {
		<-r.Context().Done()
		return
	}
	var rec relaytype.AnswerRecord
	if answer != nil {
		rec = answer(entry.ask)
	} else {
		rec = answered(entry.ask, "Use log/slog.")
	}
	if att := rec.Attestation; att != nil && att.AnsweredBy == relaytype.AnsweredByRunner && att.Signature == "" && !unsigned {
		signed := *att
		require.NoError(f.t, relaytype.SignAttestation(f.signer, rec.AskID, rec.Status, rec.AnswerText, rec.AnswerJSON, &signed))
		rec.Attestation = &signed
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rec)
}

func (f *fakeRelay) authorized(w http.ResponseWriter, r *http.Request) bool {
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad or missing bearer token", "")
		return false
	}
	return true
}

func (f *fakeRelay) play(w http.ResponseWriter, s step) {
	switch {
	case s.drop || s.cut:
		conn, buf, err := http.NewResponseController(w).Hijack()
		require.NoError(f.t, err)
		if s.cut {
			writeCut(buf)
		}
		_ = conn.Close()
	case s.code != "":
		writeError(w, s.status, s.code, "scripted failure", "")
	default:
		w.WriteHeader(s.status)
	}
}

func writeCut(buf *bufio.ReadWriter) {
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"askId\":\"")
	_ = buf.Flush()
}

func (f *fakeRelay) polls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pollCount
}

func (f *fakeRelay) postBodies() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.postBody...)
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg, "field": field})
}

// answered is an ANSWERED record attested for the ask's context.
func answered(ask relaytype.Ask, text string) relaytype.AnswerRecord {
	return relaytype.AnswerRecord{
		AskID: ask.AskID, JobID: ask.JobID, StepID: ask.StepID,
		Status:     relaytype.StatusAnswered,
		AnswerText: text,
		Attestation: &relaytype.Attestation{
			ContextHash: ask.ContextHash, RoleID: "clarifier", RoleVersion: "1",
			Model: "test-model", AnsweredBy: "runner",
		},
		CreatedAt: time.Now().UTC(),
	}
}

// testEnv is an injected environment.
type testEnv map[string]string

func (e testEnv) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

func (e testEnv) environ() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}
