package answer

import (
	"context"
	"encoding/json"
	"errors"
)

// Elicitor asks a person through a connected MCP client
// (elicitation/create, form mode).
type Elicitor interface {
	// Elicit shows message with a form described by schema (a flat object
	// JSON Schema) and returns the user's action ("accept", "decline" or
	// "cancel") and, on accept, the form's content.
	Elicit(ctx context.Context, message string, schema json.RawMessage) (action string, content map[string]any, err error)
}

// ErrNoElicitor means no connected client declared the elicitation
// capability.
var ErrNoElicitor = errors.New("no connected MCP client supports elicitation")
