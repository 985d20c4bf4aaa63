package ask

import (
	"fmt"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Route names who answers an ask.
type Route string

// Routes.
const (
	// RouteRunner is the LLM Answer Runner.
	RouteRunner Route = "runner"
	// RouteOrchestrator is the MCP client that submitted the job: it
	// answers with asks_answer (or POST /answers).
	RouteOrchestrator Route = "orchestrator"
	// RouteHuman is a person, through MCP elicitation, the
	// asks CLI or HTTP API.
	RouteHuman Route = "human"
)

// Valid reports whether r is a known route.
func (r Route) Valid() bool {
	return r == RouteRunner || r == RouteOrchestrator || r == RouteHuman
}

// Routing maps asks to routes: a rule for the ask's role wins over one for
// its type, which wins over Default.
type Routing struct {
	// Default is the route of asks no rule matches. Defaults to
	// orchestrator.
	Default Route
	// ByType maps ask types to routes.
	ByType map[relaytype.AskType]Route
	// ByRole maps role ids (role_id, or the envelope's role) to routes.
	ByRole map[string]Route
}

// Router picks the answerer of each ask. Routes without an answerer fall
// back to the orchestrator, which can always answer.
type Router struct {
	rules     Routing
	available map[Route]bool
}

// NewRouter returns a Router for rules, where available says which routes
// have an answerer (the orchestrator always has).
func NewRouter(rules Routing, available map[Route]bool) (*Router, error) {
	if rules.Default == "" {
		rules.Default = RouteOrchestrator
	}
	check := func(where string, r Route) error {
		if !r.Valid() {
			return fmt.Errorf("askAnswer.routing.%s: unknown route %q (runner, orchestrator or human)", where, r)
		}
		return nil
	}
	if err := check("default", rules.Default); err != nil {
		return nil, err
	}
	for t, r := range rules.ByType {
		if !t.Valid() {
			return nil, fmt.Errorf("askAnswer.routing.byType: unknown ask type %q", t)
		}
		if err := check("byType."+string(t), r); err != nil {
			return nil, err
		}
	}
	for role, r := range rules.ByRole {
		if err := check("byRole."+role, r); err != nil {
			return nil, err
		}
	}
	av := map[Route]bool{RouteOrchestrator: true}
	for r, ok := range available {
		av[r] = av[r] || ok
	}
	return &Router{rules: rules, available: av}, nil
}

// Route returns the route for an ask whose role is role (role_id, else the
// envelope's role) and whether a rule's choice had to fall back to the
// orchestrator for want of an answerer.
func (r *Router) Route(t relaytype.AskType, role string) (route Route, fellBack bool) {
	route = r.rules.Default
	if x, ok := r.rules.ByType[t]; ok {
		route = x
	}
	if x, ok := r.rules.ByRole[role]; ok && role != "" {
		route = x
	}
	if !r.available[route] {
		return RouteOrchestrator, true
	}
	return route, false
}

// Rules are how one project's asks are routed, decided and timed.
type Rules struct {
	// Routing maps asks to routes. Defaults to everything to the
	// orchestrator.
	Routing Routing
	// Answerers answer the routes they are registered for; a route with
	// none falls back to the orchestrator. Defaults to none.
	Answerers map[Route]Answerer
	// Decider is consulted before routing. Defaults to none.
	Decider Decider
	// Timeout is the deadline of an ask that sets no constraints.timeout_s
	// and is not routed to the runner. Defaults to 10 min.
	Timeout time.Duration
	// RunnerTimeout is that deadline for asks routed to the runner; an
	// ask the runner defers to the orchestrator gets Timeout instead.
	// Defaults to 60 s.
	RunnerTimeout time.Duration
}

// RuleSet is a checked set of Rules.
type RuleSet struct {
	r      Rules
	router *Router
}

// NewRuleSet checks r, applies its defaults and returns it compiled.
func NewRuleSet(r Rules) (*RuleSet, error) {
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if r.RunnerTimeout == 0 {
		r.RunnerTimeout = DefaultRunnerTimeout
	}
	available := map[Route]bool{}
	for route, a := range r.Answerers {
		available[route] = a != nil
	}
	router, err := NewRouter(r.Routing, available)
	if err != nil {
		return nil, err
	}
	return &RuleSet{r: r, router: router}, nil
}
