package relaytype

import "time"

// EventPhase is the type of the event that records a running job
// entering a phase; its payload is a PhasePayload.
const EventPhase = "phase"

// Phase is what a running job is doing, in words a person reads.
type Phase string

// The phases the relay's pipeline reports, in the order a job goes
// through them. Other handlers may report phases of their own.
const (
	// PhasePreparing: creating the workspace, copying bootstrap files,
	// running the workspace setup command.
	PhasePreparing Phase = "preparing workspace"
	// PhaseRunning: the executor is running.
	PhaseRunning Phase = "running"
	// PhaseCollecting: computing and checking the patch, writing the
	// artifacts.
	PhaseCollecting Phase = "collecting artifacts"
)

// PhasePayload is the payload of an EventPhase event.
type PhasePayload struct {
	Phase   Phase `json:"phase"`
	Attempt int   `json:"attempt"`
}

// ProgressLines is the number of output lines Progress.LastLines holds at
// most.
const ProgressLines = 10

// Progress is what a running job is doing now.
type Progress struct {
	// Phase is the phase the job last entered; empty when its handler
	// reported none.
	Phase Phase `json:"phase,omitempty"`
	// PhaseSince is when the job entered Phase.
	PhaseSince time.Time `json:"phaseSince,omitzero"`
	// ElapsedS is the number of seconds since the job started running
	// (its first attempt), to a tenth of a second.
	ElapsedS float64 `json:"elapsedS"`
	// Attempt is the attempt running.
	Attempt int `json:"attempt"`
	// LastLines are the last non-blank lines of the executor's output in
	// this attempt (at most ProgressLines, oldest first, each shortened to
	// a few hundred characters; the last one may be unfinished).
	LastLines []string `json:"lastLines"`
}
