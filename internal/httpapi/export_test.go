package httpapi

// Test hooks into unexported parts.
var (
	IsLoopback = isLoopback
	ParseWait  = parseWait
)

// SetOnWait sets the function a long poll calls just before it parks.
func SetOnWait(s *Server, f func(askID string)) { s.onWait = f }
