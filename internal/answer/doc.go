// Package answer owns the relay's answerers of asks: the Answer Runner (an
// LLM that answers through a role prompt, seeing only the ask's context
// envelope) and the human channel (MCP elicitation). The runner holds the
// decision cache, structured-answer validation and retries, the deferral
// to the orchestrator when its provider fails, and the signing of its
// attestations with the relay's Ed25519 key (LoadSigningKey). Each
// answerer plugs into ask.Service's routing seam as an ask.Answerer.
//
// The pieces the runner is built from live next door: the roles, output
// schemata and layered prompt in package role, the LLM providers in
// package llm. The policy, which decides asks before any answerer, is
// package policy.
package answer
