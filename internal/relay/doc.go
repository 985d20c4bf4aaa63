// Package relay owns the job lifecycle: submit, the queue, workers holding
// heartbeat leases, the sweeper that expires and rescues jobs, and cancel.
// It talks to persistence only through store.Store and runs jobs through the
// workspace and executor packages; it knows nothing of HTTP or MCP.
package relay
