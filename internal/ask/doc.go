// Package ask owns the Ask/Answer protocol on the relay side: validating
// asks and their context envelopes, storing asks and answers through the
// store, routing each new ask to its answerer, waking the executors that
// wait for an answer, timing out asks no one answers, and the bearer
// tokens that scope executors to their own job.
//
// # Lifecycle of an ask
//
//	POST /asks ─► Create: validate, recompute the envelope hash
//	              (E_CONTEXT_MISMATCH / E_NO_CONTEXT_ENVELOPE), store as
//	              PENDING, job RUNNING → WAITING_ON_ANSWER, route
//	                  │
//	   runner | human | orchestrator (asks_answer, POST /answers)
//	                  │
//	              Answer: store, ask → ANSWERED|REJECTED|TIMEOUT|ERROR,
//	              wake waiters; job back to RUNNING when nothing is
//	              pending, or FAILED for a non-ANSWERED status
//	                  │
//	GET /asks/{id}/answer?wait= ◄─ Wait returns the answer record
//
// An ask still pending at its deadline is answered TIMEOUT by the
// service's deadline loop; asks of a job that ends are answered ERROR by
// the store in the same transaction. An answerer that cannot answer
// (ErrDeferred: the runner's provider is down, no person is reachable)
// leaves its ask pending: a runner's ask is routed to the orchestrator
// with the orchestrator's deadline, stored with an "ask_deferred" event.
package ask
