package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestAskRoundTripWakesParkedWaiter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	tok := b.tokens.Mint(job.ID)
	a := newAsk(t, job.ID)

	r := b.do(t, http.MethodPost, "/asks", tok, a)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	require.Equal(t, "/asks/"+a.AskID+"/answer", r.header.Get("Location"))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var rec relaytype.AskRecord
	r.decode(t, &rec)
	require.Equal(t, a.AskID, rec.AskID)
	require.Equal(t, job.ID, rec.JobID)
	require.Equal(t, relaytype.StatusPending, rec.Status)
	require.Equal(t, a.ContextHash, rec.ContextHash)
	require.Equal(t, relaytype.StateWaitingOnAnswer, b.state(t, job.ID).State)

	// Nothing yet: an immediate GET is 204.
	r = b.do(t, http.MethodGet, "/asks/"+a.AskID+"/answer", tok, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	require.Empty(t, r.body)

	poll := b.startLongPoll(t, a.AskID, tok, "25s")
	select {
	case lp := <-poll:
		t.Fatalf("long poll returned without an answer: %d %s", lp.resp.status, lp.resp.body)
	default:
	}
	start := time.Now()
	ans := b.postAnswer(t, answered(a.AskID))
	require.Equal(t, job.ID, ans.JobID)
	require.Equal(t, "step-1", ans.StepID)
	lp := recv(t, poll, 10*time.Second)
	woke := lp.at.Sub(start)
	t.Logf("answer → parked waiter: %s", woke)
	// Well under ask's 2 s safety recheck: the answer woke the waiter.
	require.Less(t, woke, time.Second)
	require.Equal(t, http.StatusOK, lp.resp.status, "body: %s", lp.resp.body)
	var got relaytype.AnswerRecord
	lp.resp.decode(t, &got)
	require.Equal(t, relaytype.StatusAnswered, got.Status)
	require.Equal(t, "main", got.AnswerText)
	require.Equal(t, a.AskID, got.AskID)

	require.Equal(t, relaytype.StateRunning, b.state(t, job.ID).State)

	// A later GET returns the stored answer at once.
	r = b.do(t, http.MethodGet, "/asks/"+strings.ToUpper(a.AskID)+"/answer?wait=25", tok, nil)
	require.Equal(t, http.StatusOK, r.status)
}

func TestPostAskValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	op := b.operator()

	rawAsk := func(mutate func(m map[string]any)) []byte {
		a := newAsk(t, job.ID)
		raw, err := json.Marshal(a)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		mutate(m)
		raw, err = json.Marshal(m)
		require.NoError(t, err)
		return raw
	}
	tests := []struct {
		name   string
		body   any
		status int
		code   relaytype.ErrorCode
		field  string
	}{
		{"envelope altered after hashing", func() any {
			a := newAsk(t, job.ID)
			a.ContextEnvelope = json.RawMessage(strings.Replace(string(a.ContextEnvelope), `"main"`, `"dev"`, 1))
			return a
		}(), 400, relaytype.CodeContextMismatch, "context_hash"},
		{"missing envelope", func() any {
			a := newAsk(t, job.ID)
			a.ContextEnvelope = nil
			return a
		}(), 400, relaytype.CodeNoContextEnvelope, "context_envelope"},
		{"null envelope", rawAsk(func(m map[string]any) { m["context_envelope"] = nil }),
			400, relaytype.CodeNoContextEnvelope, "context_envelope"},
		{"bad ask id", rawAsk(func(m map[string]any) { m["ask_id"] = "nope" }), 400, relaytype.CodeInvalidRequest, "ask_id"},
		{"bad ask type", rawAsk(func(m map[string]any) { m["ask_type"] = "GUESS" }), 400, relaytype.CodeInvalidRequest, "ask_type"},
		{"empty prompt", rawAsk(func(m map[string]any) { m["prompt"] = " " }), 400, relaytype.CodeInvalidRequest, "prompt"},
		{"no job id", rawAsk(func(m map[string]any) { delete(m, "job_id") }), 400, relaytype.CodeInvalidRequest, "job_id"},
		{"bad hash", rawAsk(func(m map[string]any) { m["context_hash"] = "abc" }), 400, relaytype.CodeInvalidRequest, "context_hash"},
		{"bad timeout", rawAsk(func(m map[string]any) { m["constraints"] = map[string]any{"timeout_s": -1} }),
			400, relaytype.CodeInvalidRequest, "constraints.timeout_s"},
		{"unknown field", rawAsk(func(m map[string]any) { m["bogus"] = 1 }), 400, relaytype.CodeInvalidRequest, "bogus"},
		{"wrong type", rawAsk(func(m map[string]any) { m["prompt"] = 5 }), 400, relaytype.CodeInvalidRequest, "prompt"},
		{"wrong nested type", rawAsk(func(m map[string]any) { m["constraints"] = map[string]any{"max_tokens": "many"} }),
			400, relaytype.CodeInvalidRequest, "constraints.max_tokens"},
		{"not json", "{ask", 400, relaytype.CodeInvalidRequest, "body"},
		{"empty body", "", 400, relaytype.CodeInvalidRequest, "body"},
		{"trailing data", string(rawAsk(func(map[string]any) {})) + "{}", 400, relaytype.CodeInvalidRequest, "body"},
		{"unknown job", func() any { return newAsk(t, "job_DOESNOTEXIST") }(), 404, relaytype.CodeJobNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, http.MethodPost, "/asks", op, tc.body)
			e := r.requireError(t, tc.status, tc.code, tc.field)
			if tc.field != "" {
				require.Contains(t, e.Message, tc.field)
			}
		})
	}
}

func TestPostAskIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	tok := b.tokens.Mint(job.ID)
	a := newAsk(t, job.ID)
	first := b.postAsk(t, tok, a)

	// The same ask again, differently formatted: 200 and the same record.
	raw, err := json.MarshalIndent(a, "", "   ")
	require.NoError(t, err)
	r := b.do(t, http.MethodPost, "/asks", tok, raw)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, "/asks/"+a.AskID+"/answer", r.header.Get("Location"))
	var again relaytype.AskRecord
	r.decode(t, &again)
	require.Equal(t, first, &again)

	// The same id with another payload: 409.
	other := *a
	other.Prompt = "Which tag?"
	b.do(t, http.MethodPost, "/asks", tok, &other).requireError(t, 409, relaytype.CodeConflict, "")
}

func TestPostAskInactiveJob(t *testing.T) {
	t.Parallel()
	t.Run("queued", func(t *testing.T) {
		t.Parallel()
		b := setup(t, relayStopped())
		job := b.submit(t)
		require.Equal(t, relaytype.StateQueued, job.State)
		b.do(t, http.MethodPost, "/asks", b.operator(), newAsk(t, job.ID)).
			requireError(t, 409, relaytype.CodeJobNotActive, "")
	})
	t.Run("finished", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job := b.running(t)
		b.handler.ch(job.ID) <- relay.Outcome{State: relaytype.StateSucceeded, Summary: "done"}
		b.waitState(t, job.ID, relaytype.StateSucceeded)
		b.do(t, http.MethodPost, "/asks", b.tokens.Mint(job.ID), newAsk(t, job.ID)).
			requireError(t, 409, relaytype.CodeJobNotActive, "")
	})
}

func TestPostAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	op := b.operator()
	a := newAsk(t, job.ID)
	b.postAsk(t, op, a)

	first := b.postAnswer(t, answered(a.AskID))
	// Twice the same: 200, same record.
	r := b.do(t, http.MethodPost, "/answers", op, answered(a.AskID))
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var again relaytype.AnswerRecord
	r.decode(t, &again)
	require.Equal(t, first, &again)
	// Another answer: 409.
	other := answered(a.AskID)
	other.AnswerText = "develop"
	b.do(t, http.MethodPost, "/answers", op, other).requireError(t, 409, relaytype.CodeConflict, "")

	b.do(t, http.MethodPost, "/answers", op, answered(uuid.NewString())).requireError(t, 404, relaytype.CodeAskNotFound, "")
	wrongJob := answered(a.AskID)
	wrongJob.JobID = "job_OTHER"
	b.do(t, http.MethodPost, "/answers", op, wrongJob).requireError(t, 400, relaytype.CodeInvalidRequest, "job_id")
	b.do(t, http.MethodPost, "/answers", op, &relaytype.Answer{AskID: a.AskID}).requireError(t, 400, relaytype.CodeInvalidRequest, "status")
	b.do(t, http.MethodPost, "/answers", op, `{"ask_id":"`+a.AskID+`","status":"ANSWERED","answer_text":"x","extra":true}`).
		requireError(t, 400, relaytype.CodeInvalidRequest, "extra")
	b.do(t, http.MethodPost, "/answers", op, `{"ask_id":"`+a.AskID+`","status":"ANSWERED","cacheable":"yes"}`).
		requireError(t, 400, relaytype.CodeInvalidRequest, "cacheable")
}

func TestFailingAnswerFailsJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for status, reason := range map[relaytype.AnswerStatus]relaytype.FailReason{
		relaytype.StatusRejected: relaytype.ReasonPolicy,
		relaytype.StatusTimeout:  relaytype.ReasonTimeout,
		relaytype.StatusError:    relaytype.ReasonExecutorError,
	} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			job := b.running(t)
			a := newAsk(t, job.ID)
			b.postAsk(t, b.tokens.Mint(job.ID), a)
			rec := b.postAnswer(t, &relaytype.Answer{AskID: a.AskID, Status: status, Error: "no"})
			require.Equal(t, status, rec.Status)
			j := b.state(t, job.ID)
			require.Equal(t, relaytype.StateFailed, j.State)
			require.Equal(t, reason, j.ReasonCode)

			// The executor still reads the answer that failed its job.
			r := b.do(t, http.MethodGet, "/asks/"+a.AskID+"/answer", b.tokens.Mint(job.ID), nil)
			require.Equal(t, http.StatusOK, r.status)
		})
	}
}

func TestListJobAsks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	op := b.operator()

	var list struct {
		Items []relaytype.AskRecord `json:"items"`
	}
	r := b.do(t, http.MethodGet, "/jobs/"+job.ID+"/asks", op, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"items":[]}`, string(r.body))

	a1, a2 := newAsk(t, job.ID), newAsk(t, job.ID)
	b.postAsk(t, op, a1)
	b.postAsk(t, op, a2)
	b.postAnswer(t, answered(a1.AskID))

	r = b.do(t, http.MethodGet, "/jobs/"+job.ID+"/asks", op, nil)
	require.Equal(t, http.StatusOK, r.status)
	r.decode(t, &list)
	require.Len(t, list.Items, 2)
	require.Equal(t, a1.AskID, list.Items[0].AskID)
	require.Equal(t, relaytype.StatusAnswered, list.Items[0].Status)
	for _, a := range list.Items {
		require.Equal(t, job.Attempt, a.Attempt, "each ask names the attempt that posted it")
	}
	require.Contains(t, string(r.body), fmt.Sprintf(`"attempt":%d`, job.Attempt))

	r = b.do(t, http.MethodGet, "/jobs/"+job.ID+"/asks?status=pending", op, nil)
	require.Equal(t, http.StatusOK, r.status)
	r.decode(t, &list)
	require.Len(t, list.Items, 1)
	require.Equal(t, a2.AskID, list.Items[0].AskID)

	b.do(t, http.MethodGet, "/jobs/"+job.ID+"/asks?status=MAYBE", op, nil).requireError(t, 400, relaytype.CodeInvalidRequest, "status")
	b.do(t, http.MethodGet, "/jobs/job_NOPE/asks", op, nil).requireError(t, 404, relaytype.CodeJobNotFound, "")
}

func TestAnswerUnknownAsk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, wait := range []string{"", "?wait=1s"} {
		b.do(t, http.MethodGet, "/asks/"+uuid.NewString()+"/answer"+wait, b.operator(), nil).
			requireError(t, 404, relaytype.CodeAskNotFound, "")
	}
	b.do(t, http.MethodGet, "/asks/"+uuid.NewString()+"/answer?wait=soon", b.operator(), nil).
		requireError(t, 400, relaytype.CodeInvalidRequest, "wait")
}

func TestWaitIsCapped(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *httpapi.Config) { c.LongPollMax = 100 * time.Millisecond }))
	job := b.running(t)
	a := newAsk(t, job.ID)
	b.postAsk(t, b.operator(), a)
	for _, wait := range []string{"10m", "600", fmt.Sprint(1 << 62)} {
		start := time.Now()
		r := b.do(t, http.MethodGet, "/asks/"+a.AskID+"/answer?wait="+wait, b.tokens.Mint(job.ID), nil)
		took := time.Since(start)
		require.Equal(t, http.StatusNoContent, r.status, "wait=%s", wait)
		require.GreaterOrEqual(t, took, 100*time.Millisecond, "wait=%s", wait)
		require.Less(t, took, 2*time.Second, "wait=%s", wait)
	}
}
