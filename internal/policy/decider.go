package policy

import (
	"encoding/json"
	"fmt"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Decider applies a Policy to every new ask (ask.Decider): ALLOW
// answers it, DENY rejects it, both with the rule in policy_trace and no
// model involved; ESCALATE sends it to the runner (whose policy_decider
// role answers POLICY_DECISION and APPROVAL asks; without a runner the
// orchestrator answers); a rule's route sends it there.
type Decider struct {
	Policy *Policy
}

var _ ask.Decider = Decider{}

// Decide implements ask.Decider.
func (d Decider) Decide(a *relaytype.AskRecord) (*relaytype.Answer, ask.Route) {
	if d.Policy == nil {
		return nil, ""
	}
	o, ok := d.Policy.Evaluate(a)
	if !ok {
		return nil, ""
	}
	att := &relaytype.Attestation{ContextHash: a.ContextHash, RoleID: "policy", PolicyVersion: o.PolicyVersion, AnsweredBy: relaytype.AnsweredByPolicy}
	decision := func(status relaytype.AnswerStatus) *relaytype.Answer {
		js, _ := json.Marshal(map[string]any{"decision": o.Decision, "rules": []string{o.Rule.Name}, "reason": o.Rule.Reason})
		return &relaytype.Answer{Status: status, AnswerJSON: js, PolicyTrace: o.Trace(), Attestation: att}
	}
	switch o.Decision {
	case "ALLOW":
		ans := decision(relaytype.StatusAnswered)
		ans.AnswerText = fmt.Sprintf("allowed by policy rule %q", o.Rule.Name)
		return ans, ""
	case "DENY":
		ans := decision(relaytype.StatusRejected)
		ans.Error = fmt.Sprintf("denied by policy rule %q", o.Rule.Name)
		if o.Rule.Reason != "" {
			ans.Error += ": " + o.Rule.Reason
		}
		return ans, ""
	case "ESCALATE":
		return nil, ask.RouteRunner
	}
	return nil, ask.Route(o.Route)
}
