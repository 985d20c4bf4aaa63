// Package app is the composition root of the relay: it turns
// configuration into each component's Config and wires store, relay, ask
// service, answerers, executors, HTTP API and MCP servers together, for the
// three ways the relay runs: the per-user relay service (daemon), the thin
// stdio front that carries one MCP session to it, and the standalone
// in-process mode. Check runs the same wiring without starting anything,
// for doctor.
package app
