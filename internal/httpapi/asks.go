package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// postAsk is POST /asks.
func (s *Server) postAsk(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	var a relaytype.Ask
	if e := s.decode(w, r, &a); e != nil {
		writeError(w, e)
		return
	}
	// An empty job_id is left to validation, which names the field.
	if a.JobID != "" && !p.may(a.JobID) {
		writeError(w, forbidden("this token may only create asks for job %s", p.jobID))
		return
	}
	rec, created, err := s.cfg.Asks.Create(ask.WithAttempt(r.Context(), p.attempt), &a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/asks/"+rec.AskID+"/answer")
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
	}
	writeJSON(w, status, rec)
}

// getAnswer is GET /asks/{askId}/answer?wait=: the answer (200), or 204
// when there is none within the wait.
func (s *Server) getAnswer(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	askID := r.PathValue("askId")
	wait, err := parseWait(r.URL.Query().Get("wait"))
	if err != nil {
		writeError(w, badRequest("wait", "%v", err))
		return
	}
	wait = min(wait, s.cfg.LongPollMax)
	if !p.operator {
		a, err := s.cfg.Asks.Get(r.Context(), askID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if a.JobID != p.jobID {
			writeError(w, forbidden("this token may only read answers to asks of job %s", p.jobID))
			return
		}
	}
	var rec *relaytype.AnswerRecord
	if wait <= 0 {
		rec, err = s.cfg.Asks.AnswerOf(r.Context(), askID)
	} else {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		if stop := stopping(r); stop != nil {
			go func() {
				select {
				case <-stop:
					cancel()
				case <-ctx.Done():
				}
			}()
		}
		if s.cfg.OnWait != nil {
			s.cfg.OnWait(askID)
		}
		rec, err = s.cfg.Asks.Wait(ctx, askID, wait)
	}
	switch {
	case r.Context().Err() != nil:
		return // the client left; no one to answer
	case errors.Is(err, context.Canceled):
		// The server is shutting down: no answer yet, ask again.
		w.WriteHeader(http.StatusNoContent)
	case err != nil:
		s.fail(w, r, err)
	case rec == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

// parseWait parses ?wait=: a Go duration ("25s", "500ms") or a number of
// seconds ("25", "2.5"). Empty means no wait.
func parseWait(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, perr := strconv.ParseFloat(v, 64)
		if perr != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, fmt.Errorf("%q is neither a duration (25s, 500ms) nor a number of seconds", v)
		}
		if secs > math.MaxInt64/float64(time.Second) {
			return math.MaxInt64, nil
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", v)
	}
	return d, nil
}

// postAnswer is POST /answers.
func (s *Server) postAnswer(w http.ResponseWriter, r *http.Request) {
	if !s.operatorOnly(w, r) {
		return
	}
	var a relaytype.Answer
	if e := s.decode(w, r, &a); e != nil {
		writeError(w, e)
		return
	}
	rec, created, err := s.cfg.Asks.Answer(r.Context(), &a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
	}
	writeJSON(w, status, rec)
}

// askList is the body of GET /jobs/{jobId}/asks.
type askList struct {
	Items []*relaytype.AskRecord `json:"items"`
}

// listAsks is GET /jobs/{jobId}/asks?status=.
func (s *Server) listAsks(w http.ResponseWriter, r *http.Request) {
	if !s.operatorOnly(w, r) {
		return
	}
	s.writeAsks(w, r, r.PathValue("jobId"), r.URL.Query().Get("status"))
}

// writeAsks answers a list of asks: of jobID (which must exist) or of
// every job when it is empty, in status (any case; empty: every status).
// A bad status is 400 naming "status".
func (s *Server) writeAsks(w http.ResponseWriter, r *http.Request, jobID, rawStatus string) {
	status := relaytype.AnswerStatus(strings.ToUpper(strings.TrimSpace(rawStatus)))
	if status != "" && status != relaytype.StatusPending && !status.ValidAnswer() {
		writeError(w, badRequest("status", "must be PENDING, ANSWERED, REJECTED, TIMEOUT or ERROR, not %q", rawStatus))
		return
	}
	if jobID != "" {
		if _, err := s.cfg.Jobs.Get(r.Context(), jobID); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	items, err := s.cfg.Asks.List(r.Context(), jobID, status)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if items == nil {
		items = []*relaytype.AskRecord{}
	}
	writeJSON(w, http.StatusOK, askList{Items: items})
}
