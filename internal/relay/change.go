package relay

import "github.com/mcp-task-relay/mcp-task-relay/relaytype"

// Change tells subscribers that something about a job changed: its state
// (State and StateVersion set) or one of its artifacts (Artifact set).
type Change struct {
	JobID        string
	State        relaytype.JobState
	StateVersion int64
	// Artifact is set when the change is a newly stored artifact.
	Artifact relaytype.ArtifactKind
	// Asks is set when an ask of the job was created or answered.
	Asks bool
	// Log is set when executor output was appended to the job's events.
	Log bool
	// Remote is set when another relay sharing the store made the change
	// (see store.Notifier): counters that every relay keeps count only
	// their own changes, so that summing relays counts each once.
	Remote bool
}
