package relay_test

import (
	"encoding/json"
	"log/slog"
)

var quiet = slog.New(slog.DiscardHandler)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
