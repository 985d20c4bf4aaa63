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
// Every tool's input and output schema is generated from its Go argument
// and result types (schema.go). Tool arguments are validated here, not by
// the SDK: against the input schema the tool advertises (validate.go), then
// by the handlers and relaytype.ParseJobSpec, so that a bad argument fails
// with INVALID_REQUEST, and a bad spec with INVALID_SPEC, naming the field
// (for example execution.timeoutS) rather than with a validator's message.
package mcpserver
