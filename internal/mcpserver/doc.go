// Package mcpserver owns the relay's MCP face: the *mcp.Server with the
// jobs_* tools and the mcp://jobs/... resources, each translating to a call
// on the relay; the asks_* tools and mcp://jobs/{jobId}/asks, translating
// to the ask service, through which the orchestrating client answers the
// questions of executors; jobs_wait, which holds a call open until a job
// changes (with progress notifications meanwhile); and the pump that turns
// relay changes into notifications/resources/updated for the sessions
// subscribed to them.
//
// Tool failures are tool results with isError set whose text is the JSON
// object {"code","message","field"} carrying a contract error code
// (relaytype.ErrorCode); JSON-RPC errors are kept for protocol faults and
// for the resource-not-found error of resources/read.
//
// Tool arguments are decoded and validated here, not by the SDK: the input
// schemas are descriptive (they tell the client model what to send) and the
// JobSpec is parsed by relaytype.ParseJobSpec, so a bad spec fails with
// INVALID_SPEC naming the field rather than with a schema-validator message.
package mcpserver
