package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// SSE event names besides the stored event types.
const (
	sseConnected = "connected"
	sseHeartbeat = "heartbeat"
	sseStatus    = "status"
	// sseRetryMS is the reconnection delay suggested to clients.
	sseRetryMS = 2000
	// replayPage is how many stored events one read fetches.
	replayPage = 500
)

// sseName maps a stored event type to its SSE event name.
func sseName(eventType string) string {
	switch eventType {
	case relaytype.EventSubmitted, relaytype.EventTransition:
		return sseStatus
	}
	return eventType
}

// lastEventID reads where a client resumes: the Last-Event-ID header, else
// ?lastEventId=, else 0 (from the start).
func lastEventID(r *http.Request) (int64, *apiError) {
	field, v := "Last-Event-ID", strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if v == "" {
		field, v = "lastEventId", strings.TrimSpace(r.URL.Query().Get("lastEventId"))
	}
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return 0, badRequest(field, "must be an event id (a non-negative integer), not %q", v)
	}
	return id, nil
}

// events is GET /jobs/{jobId}/events: the job's audit log as Server-Sent
// Events, replayed after Last-Event-ID, then live until the client leaves
// or the server stops.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if !s.operatorOnly(w, r) {
		return
	}
	jobID := r.PathValue("jobId")
	after, e := lastEventID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	ctx := r.Context()
	// Subscribe before reading anything, so that a change made while the
	// replay is read still triggers a read after it.
	changes, unsubscribe := s.cfg.Jobs.Subscribe()
	defer unsubscribe()
	job, err := s.cfg.Jobs.Get(ctx, jobID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Changes are drained into a one-slot signal at once, so that a slow
	// client never makes the relay drop changes for other subscribers.
	dirty := make(chan struct{}, 1)
	done := make(chan struct{})
	defer close(done)
	// relayStopped is closed when the relay closes the subscription: the
	// stream ends then.
	relayStopped := make(chan struct{})
	go func() {
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					close(relayStopped)
					return
				}
				if c.JobID == jobID {
					select {
					case dirty <- struct{}{}:
					default:
					}
				}
			case <-done:
				return
			}
		}
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	st := &sseStream{w: w, rc: http.NewResponseController(w), last: after}
	hello, _ := json.Marshal(map[string]any{"jobId": job.ID, "state": job.State, "stateVersion": job.StateVersion})
	st.buf.WriteString("retry: " + strconv.Itoa(sseRetryMS) + "\n")
	if st.send(sseConnected, st.last, hello) != nil {
		return
	}
	// drain sends every stored event after the last one sent.
	drain := func() error {
		for {
			evs, err := s.cfg.Jobs.Events(ctx, jobID, st.last, replayPage)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				data, err := json.Marshal(ev)
				if err != nil {
					return err
				}
				if err := st.send(sseName(ev.Type), ev.ID, data); err != nil {
					return err
				}
			}
			if len(evs) < replayPage {
				return nil
			}
		}
	}
	if err := drain(); err != nil {
		s.streamEnded(r, err)
		return
	}
	beat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer beat.Stop()
	stop := stopping(r)
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-relayStopped:
			// What was stored before the stop is still sent.
			if err := drain(); err != nil {
				s.streamEnded(r, err)
			}
			return
		case <-dirty:
		case now := <-beat.C:
			// Also a safety net for events this process was not told
			// about (written by another relay).
			if err := drain(); err != nil {
				s.streamEnded(r, err)
				return
			}
			data, _ := json.Marshal(map[string]any{"jobId": jobID, "ts": now.UTC()})
			if err := st.send(sseHeartbeat, st.last, data); err != nil {
				return
			}
			continue
		}
		if err := drain(); err != nil {
			s.streamEnded(r, err)
			return
		}
	}
}

// streamEnded logs why a stream stopped, unless the client simply left.
func (s *Server) streamEnded(r *http.Request, err error) {
	if r.Context().Err() != nil || errors.Is(err, errWrite) {
		return
	}
	s.log.Warn("event stream ended", "path", r.URL.Path, "err", err)
}

var errWrite = errors.New("write event")

// sseStream writes Server-Sent Events, each flushed at once.
type sseStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	buf  bytes.Buffer
	last int64 // id of the last stored event sent
}

// send writes one event. Stored events advance last to their id.
func (st *sseStream) send(event string, id int64, data []byte) error {
	st.buf.WriteString("id: " + strconv.FormatInt(id, 10) + "\nevent: " + event + "\n")
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		st.buf.WriteString("data: ")
		st.buf.Write(line)
		st.buf.WriteByte('\n')
	}
	st.buf.WriteByte('\n')
	// Not every ResponseWriter has deadlines (httptest's recorder); the
	// stream then just goes without.
	_ = st.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	_, err := st.w.Write(st.buf.Bytes())
	st.buf.Reset()
	if err == nil {
		err = st.rc.Flush()
	}
	if err != nil {
		return errors.Join(errWrite, err)
	}
	st.last = max(st.last, id)
	return nil
}
