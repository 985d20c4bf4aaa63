package httpapi

// Test hooks into unexported parts.
var (
	IsLoopback = isLoopback
	ParseWait  = parseWait
)
