// Package relay owns the job lifecycle: submit, the queue, workers holding
// heartbeat leases, the sweeper that expires and rescues jobs, and cancel.
// It talks to persistence only through store.Store and runs jobs through a
// Handler (Pipeline in production: workspace, executor, artifacts); it knows
// nothing of HTTP or MCP.
//
// # State machine
//
// The states and legal edges are those of relaytype.CanTransition:
//
//	QUEUED ──claim──► RUNNING ──► SUCCEEDED | FAILED
//	  │                 │  ▲
//	  │                 ▼  │ (ask answered)
//	  │          WAITING_ON_ANSWER ──► FAILED | CANCELED | EXPIRED
//	  │                 │
//	  │                 └──lease lapsed──► STALE ──► QUEUED (retry) | FAILED
//	  └──► CANCELED | EXPIRED (ttl)
//
// The store validates every edge and, in the same transaction, increments
// stateVersion and appends the event, so the database is the one source
// of truth; the relay only decides which edge to ask for.
//
// # Dispatch
//
// Submit inserts the job and signals the dispatcher, which claims as many
// jobs as it has free worker slots (highest priority, then oldest) and
// starts a goroutine per job. A finishing worker signals again. A slow
// safety-net poll (Config.PollInterval) only covers jobs inserted by other
// processes; nothing on the submit→start path waits on a timer.
//
// # Leases
//
// A claim takes a lease of Config.LeaseTTL that the worker renews every
// Config.HeartbeatInterval. If the relay dies the lease lapses; the
// sweeper of the next relay (or of another instance) then moves the job
// RUNNING → STALE → QUEUED, and the next claim counts another attempt, up
// to the spec's maxAttempts, after which the job is FAILED. A worker whose
// heartbeat finds the lease gone (canceled elsewhere, or taken over) stops
// its executor at once. On a clean Stop, running jobs go to STALE and are
// requeued by the next sweep rather than waiting out their lease.
//
// # Cancel
//
// Cancel moves the job to CANCELED first, then cancels the worker's
// context; the executor package kills the executor's whole process group,
// and Cancel waits for the worker to finish before returning.
package relay
