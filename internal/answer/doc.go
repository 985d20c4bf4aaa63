// Package answer owns the relay's answerers of asks: the Answer Runner (an
// LLM that answers through a role prompt, seeing only the ask's context
// envelope), the deterministic policy, and the human channel. It holds the
// role catalog, the layered prompt builder, the providers behind the small
// Provider interface, structured-answer validation, the decision cache and
// attestation signing. Each answerer plugs into ask.Service's routing seam
// as an ask.Answerer.
package answer
