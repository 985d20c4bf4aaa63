// Package policy is the deterministic decider of asks: the ordered rules
// of policy.yaml, evaluated against an ask before it is routed, and the
// Decider that plugs them into ask.Service (ALLOW answers an ask, DENY
// rejects it, ESCALATE or a route sends it to an answerer), with no model
// involved.
package policy
