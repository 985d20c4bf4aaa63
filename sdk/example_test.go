package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
	"github.com/mcp-task-relay/mcp-task-relay/sdk"
)

// An executor started by the relay finds the relay, its token, its job and
// its facts in the environment, so asking takes one call.
func ExampleAsk() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	ans, err := sdk.Ask(ctx, relaytype.AskApproval, "Apply migration 0042 to the staging database?", &sdk.AskOptions{
		Role:         "policy_decider",
		AllowedTools: []string{"database"},
		TimeoutS:     300,
	})
	switch {
	case errors.Is(err, sdk.ErrRejected):
		log.Fatalf("not approved: %s", ans.Error)
	case errors.Is(err, sdk.ErrTimedOut):
		log.Fatal("nobody answered in time")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(ans.Text)
}

func ExampleClient_Ask() {
	relay := httptest.NewServer(exampleRelay())
	defer relay.Close()

	// Settings are read through Env; here they come from a map rather than
	// the process environment.
	env := map[string]string{
		"TASK_RELAY_JOB_ID":      "job-1",
		"TASK_RELAY_STEP_ID":     "step-1",
		"TASK_RELAY_FACT_branch": "main",
	}
	c := &sdk.Client{
		Origin: relay.URL,
		Env: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		Environ: func() []string { return []string{"TASK_RELAY_FACT_branch=main"} },
	}

	ans, err := c.Ask(context.Background(), relaytype.AskChoice, "Which logger should new code use?", &sdk.AskOptions{
		Role:         "clarifier",
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"logger":{"type":"string"}}}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ans.Status, string(ans.JSON))
	fmt.Println("answered by", ans.Attestation.RoleID)
	// Output:
	// ANSWERED {"logger":"log/slog"}
	// answered by clarifier
}

// exampleRelay stands in for the relay: it takes an ask and answers it at
// once, attested for the ask's context hash.
func exampleRelay() http.Handler {
	asks := make(chan relaytype.Ask, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /asks", func(w http.ResponseWriter, r *http.Request) {
		var ask relaytype.Ask
		if err := json.NewDecoder(r.Body).Decode(&ask); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		asks <- ask
		w.Header().Set("Location", "/asks/"+ask.AskID+"/answer")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(relaytype.AskRecord{AskID: ask.AskID, Status: relaytype.StatusPending})
	})
	mux.HandleFunc("GET /asks/{id}/answer", func(w http.ResponseWriter, r *http.Request) {
		ask := <-asks
		_ = json.NewEncoder(w).Encode(relaytype.AnswerRecord{
			AskID:       ask.AskID,
			JobID:       ask.JobID,
			StepID:      ask.StepID,
			Status:      relaytype.StatusAnswered,
			AnswerJSON:  json.RawMessage(`{"logger":"log/slog"}`),
			Attestation: &relaytype.Attestation{ContextHash: ask.ContextHash, RoleID: ask.RoleID},
			CreatedAt:   time.Now(),
		})
	})
	return mux
}
