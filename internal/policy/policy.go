package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/internal/strictyaml"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Policy decisions.
const (
	DecisionAllow    = "ALLOW"
	DecisionDeny     = "DENY"
	DecisionEscalate = "ESCALATE"
)

// Policy is the deterministic answerer of asks: an ordered list of rules
// read from the config dir's policy.yaml. The first rule whose match
// conditions all hold decides the ask (ALLOW, DENY or ESCALATE) or sends
// it to an answerer (runner, orchestrator or human). An ask no rule
// matches is left to the ordinary routing.
//
// policy.yaml:
//
//	policy_version: "2.0"        # optional; defaults to "1.0"
//	rules:
//	  - name: no-prod-db-writes  # required, unique
//	    match:                   # every condition given must hold; none = match all
//	      ask_type: [POLICY_DECISION, APPROVAL]  # any of (a single value is fine)
//	      role: [policy_decider]                 # any of: role_id (or the ask type's
//	                                             # default role) or the envelope's role
//	      prompt: "(?i)drop table|delete from"   # Go regexp, found anywhere in the prompt
//	      prompt_glob: "*deploy*"                # glob over the whole prompt
//	      facts:                                 # glob per key, all must hold
//	        env_profile: prod
//	        branch: "release/*"
//	    decision: DENY           # ALLOW | DENY | ESCALATE; exactly one of decision, route
//	    reason: production database writes need a human
//	  - name: approvals-to-humans
//	    match: {ask_type: [APPROVAL]}
//	    route: human             # runner | orchestrator | human
//
// Fact keys are looked up in the envelope's job_snapshot first for repo,
// commit_sha, env_profile and policy_version (an omitted one has its smart
// default: "unknown", "unknown", "dev", "1.0"), "role" is the envelope's
// role, and every other key comes from the envelope's facts (a number or
// boolean as its JSON text). A key the envelope lacks never matches. In a
// glob, '*' matches any run of characters ('/' included) and '?' any one
// character; globs are case-sensitive.
type Policy struct {
	// Version is policy_version, recorded in traces and attestations.
	Version string
	Rules   []Rule
	// Source is the file the policy came from; empty when there was none.
	Source string
}

// Rule is one rule of a Policy.
type Rule struct {
	Name  string
	Match Match
	// Decision is ALLOW, DENY or ESCALATE, or "" when Route is set.
	Decision string
	// Route is runner, orchestrator or human, or "" when Decision is set.
	Route  string
	Reason string

	prompt *regexp.Regexp
	glob   *regexp.Regexp
	facts  map[string]*regexp.Regexp
}

// Match holds the conditions of a rule; the empty ones are not checked.
type Match struct {
	AskType    []relaytype.AskType
	Role       []string
	Prompt     string
	PromptGlob string
	Facts      map[string]string
}

// Outcome is the result of a policy evaluation.
type Outcome struct {
	// Rule is the rule that matched.
	Rule *Rule
	// Decision is the rule's decision, or "".
	Decision string
	// Route is the rule's route, or "".
	Route string
	// PolicyVersion is the version of the policy that decided.
	PolicyVersion string
}

// LoadPolicy reads the policy at path. A file that does not exist gives an
// empty policy of version "1.0". Parsing is strict: bad YAML, an unknown
// or duplicate key, a missing or duplicate rule name, an unknown ask type,
// decision or route, a rule with both or neither of decision and route,
// an invalid regexp or glob fail with an error naming the file, the rule
// and the field (a *strictyaml.FieldError where there is a field).
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Policy{Version: relaytype.DefaultPolicyVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return ParsePolicy(path, data)
}

// ParsePolicy parses a policy.yaml document; file names it in errors.
func ParsePolicy(file string, data []byte) (*Policy, error) {
	root, err := strictyaml.Root(file, data)
	if err != nil {
		return nil, err
	}
	fields, err := strictyaml.Fields(file, "", "", root, []string{"policy_version", "rules"})
	if err != nil {
		return nil, err
	}
	p := &Policy{Version: relaytype.DefaultPolicyVersion, Source: file}
	if n, ok := fields["policy_version"]; ok && !strictyaml.IsNull(n) {
		if n.Kind != yaml.ScalarNode || strings.TrimSpace(n.Value) == "" {
			return nil, &strictyaml.FieldError{File: file, Field: "policy_version", Msg: "must be a non-empty string"}
		}
		p.Version = strings.TrimSpace(n.Value)
	}
	n, ok := fields["rules"]
	if !ok || strictyaml.IsNull(n) {
		return p, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, &strictyaml.FieldError{File: file, Field: "rules", Msg: "must be a list of rules"}
	}
	names := map[string]int{}
	for i, rn := range n.Content {
		r, err := parseRule(file, i, rn)
		if err != nil {
			return nil, err
		}
		if j, dup := names[r.Name]; dup {
			return nil, &strictyaml.FieldError{File: file, Where: ruleWhere(i, r.Name), Field: "name", Msg: fmt.Sprintf("is also the name of rules[%d]", j)}
		}
		names[r.Name] = i
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

func ruleWhere(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("rules[%d]", i)
	}
	return fmt.Sprintf("rules[%d] (%s)", i, name)
}

var (
	ruleKeys  = []string{"name", "match", "decision", "route", "reason"}
	matchKeys = []string{"ask_type", "role", "prompt", "prompt_glob", "facts"}
)

func parseRule(file string, i int, n *yaml.Node) (Rule, error) {
	var r Rule
	where := ruleWhere(i, "")
	if n.Kind == yaml.MappingNode {
		// Name the rule in every error, once its name is known.
		for k := 0; k+1 < len(n.Content); k += 2 {
			if n.Content[k].Value == "name" && n.Content[k+1].Kind == yaml.ScalarNode {
				where = ruleWhere(i, n.Content[k+1].Value)
			}
		}
	}
	fe := func(field, format string, a ...any) error {
		return &strictyaml.FieldError{File: file, Where: where, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	fields, err := strictyaml.Fields(file, where, "", n, ruleKeys)
	if err != nil {
		return r, err
	}
	str := func(key string) (string, error) {
		v, ok := fields[key]
		if !ok || strictyaml.IsNull(v) {
			return "", nil
		}
		if v.Kind != yaml.ScalarNode {
			return "", fe(key, "must be a string")
		}
		return strings.TrimSpace(v.Value), nil
	}
	if r.Name, err = str("name"); err != nil {
		return r, err
	}
	if r.Name == "" {
		return r, fe("name", "is required")
	}
	if r.Decision, err = str("decision"); err != nil {
		return r, err
	}
	if r.Route, err = str("route"); err != nil {
		return r, err
	}
	if r.Reason, err = str("reason"); err != nil {
		return r, err
	}
	switch {
	case r.Decision == "" && r.Route == "":
		return r, fe("decision", "or route is required")
	case r.Decision != "" && r.Route != "":
		return r, fe("route", "cannot be given with decision; a rule either decides or routes")
	case r.Decision != "" && r.Decision != DecisionAllow && r.Decision != DecisionDeny && r.Decision != DecisionEscalate:
		return r, fe("decision", "is %q: must be ALLOW, DENY or ESCALATE", r.Decision)
	case r.Route != "" && r.Route != "runner" && r.Route != "orchestrator" && r.Route != "human":
		return r, fe("route", "is %q: must be runner, orchestrator or human", r.Route)
	}
	mn, ok := fields["match"]
	if !ok || strictyaml.IsNull(mn) {
		return r, nil
	}
	mf, err := strictyaml.Fields(file, where, "match.", mn, matchKeys)
	if err != nil {
		return r, err
	}
	if v, ok := mf["ask_type"]; ok {
		list, err := yamlStringOrList(v)
		if err != nil {
			return r, fe("match.ask_type", "%v", err)
		}
		for _, s := range list {
			t := relaytype.AskType(s)
			if !t.Valid() {
				return r, fe("match.ask_type", "has %q: must be one of %v", s, relaytype.AskTypes)
			}
			r.Match.AskType = append(r.Match.AskType, t)
		}
	}
	if v, ok := mf["role"]; ok {
		if r.Match.Role, err = yamlStringOrList(v); err != nil {
			return r, fe("match.role", "%v", err)
		}
	}
	if v, ok := mf["prompt"]; ok && !strictyaml.IsNull(v) {
		if v.Kind != yaml.ScalarNode {
			return r, fe("match.prompt", "must be a regular expression")
		}
		r.Match.Prompt = v.Value
		if r.prompt, err = regexp.Compile(v.Value); err != nil {
			return r, fe("match.prompt", "is not a valid regular expression: %v", err)
		}
	}
	if v, ok := mf["prompt_glob"]; ok && !strictyaml.IsNull(v) {
		if v.Kind != yaml.ScalarNode {
			return r, fe("match.prompt_glob", "must be a glob")
		}
		r.Match.PromptGlob = v.Value
		r.glob = globRegexp(v.Value)
	}
	if v, ok := mf["facts"]; ok && !strictyaml.IsNull(v) {
		if v.Kind != yaml.MappingNode {
			return r, fe("match.facts", "must be a mapping of fact name to glob")
		}
		r.Match.Facts = map[string]string{}
		r.facts = map[string]*regexp.Regexp{}
		for k := 0; k+1 < len(v.Content); k += 2 {
			key, val := v.Content[k], v.Content[k+1]
			field := "match.facts." + key.Value
			if key.Kind != yaml.ScalarNode || key.Value == "" {
				return r, fe("match.facts", "has a key that is not a string (line %d)", key.Line)
			}
			if _, dup := r.Match.Facts[key.Value]; dup {
				return r, fe(field, "is given twice (line %d)", key.Line)
			}
			if val.Kind != yaml.ScalarNode || strictyaml.IsNull(val) {
				return r, fe(field, "must be a string glob (line %d)", val.Line)
			}
			r.Match.Facts[key.Value] = val.Value
			r.facts[key.Value] = globRegexp(val.Value)
		}
	}
	return r, nil
}

// yamlStringOrList decodes a string or a list of strings.
func yamlStringOrList(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode && !strictyaml.IsNull(n) {
		if strings.TrimSpace(n.Value) == "" {
			return nil, errors.New("must not be empty")
		}
		return []string{strings.TrimSpace(n.Value)}, nil
	}
	return strictyaml.Strings(n)
}

// globRegexp compiles a glob where '*' matches any run of characters and
// '?' any one character, anchored at both ends.
func globRegexp(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for _, c := range glob {
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	return regexp.MustCompile(b.String())
}

// Evaluate returns the outcome of the first rule that matches a, and
// whether one did.
func (p *Policy) Evaluate(a *relaytype.AskRecord) (Outcome, bool) {
	if p == nil || a == nil {
		return Outcome{}, false
	}
	var facts askFacts
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.matches(a, &facts) {
			return Outcome{Rule: r, Decision: r.Decision, Route: r.Route, PolicyVersion: p.Version}, true
		}
	}
	return Outcome{}, false
}

// askFacts is the envelope of an ask, decoded once, on first use.
type askFacts struct {
	decoded bool
	env     relaytype.Envelope
	raw     map[string]json.RawMessage
}

func (f *askFacts) load(a *relaytype.AskRecord) {
	if f.decoded {
		return
	}
	f.decoded = true
	_ = json.Unmarshal(a.ContextEnvelope, &f.env)
	var shape struct {
		Facts map[string]json.RawMessage `json:"facts"`
	}
	_ = json.Unmarshal(a.ContextEnvelope, &shape)
	f.raw = shape.Facts
}

// lookup returns the value of the fact key, as text.
func (f *askFacts) lookup(a *relaytype.AskRecord, key string) (string, bool) {
	f.load(a)
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	js := f.env.JobSnapshot
	switch key {
	case "repo":
		return or(js.Repo, relaytype.EnvelopeUnknown), true
	case "commit_sha":
		return or(js.CommitSHA, relaytype.EnvelopeUnknown), true
	case "env_profile":
		return or(js.EnvProfile, relaytype.DefaultEnvProfile), true
	case "policy_version":
		return or(js.PolicyVersion, relaytype.DefaultPolicyVersion), true
	case "role":
		return or(f.env.Role, relaytype.DefaultEnvelopeRole), true
	}
	raw, ok := f.raw[key]
	if !ok || string(raw) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	if c, err := relaytype.CanonicalJSON(raw); err == nil {
		return string(c), true
	}
	return string(raw), true
}

func (r *Rule) matches(a *relaytype.AskRecord, facts *askFacts) bool {
	m := &r.Match
	if len(m.AskType) > 0 {
		ok := false
		for _, t := range m.AskType {
			ok = ok || t == a.AskType
		}
		if !ok {
			return false
		}
	}
	if len(m.Role) > 0 {
		facts.load(a)
		roles := askRoles(a, facts.env.Role)
		ok := false
		for _, want := range m.Role {
			for _, have := range roles {
				ok = ok || want == have
			}
		}
		if !ok {
			return false
		}
	}
	if m.Prompt != "" && !matchRegexp(r.prompt, m.Prompt, a.Prompt, false) {
		return false
	}
	if m.PromptGlob != "" && !matchRegexp(r.glob, m.PromptGlob, a.Prompt, true) {
		return false
	}
	for key, glob := range m.Facts {
		v, ok := facts.lookup(a, key)
		if !ok || !matchRegexp(r.facts[key], glob, v, true) {
			return false
		}
	}
	return true
}

// askRoles returns the names an ask's role goes by: role_id as given and
// as a bare id (or, without one, the ask type's default role), and the
// envelope's role.
func askRoles(a *relaytype.AskRecord, envRole string) []string {
	var out []string
	if a.RoleID != "" {
		out = append(out, a.RoleID)
		if id, _, err := role.ParseRoleRef(a.RoleID); err == nil {
			out = append(out, id)
		}
	} else {
		out = append(out, role.DefaultRole(a.AskType))
	}
	if envRole != "" {
		out = append(out, envRole)
	}
	return out
}

// matchRegexp matches s against re, compiling pattern when re is nil (a
// Rule built by hand rather than parsed).
func matchRegexp(re *regexp.Regexp, pattern, s string, glob bool) bool {
	if re == nil {
		if glob {
			re = globRegexp(pattern)
		} else {
			var err error
			if re, err = regexp.Compile(pattern); err != nil {
				return false
			}
		}
	}
	return re.MatchString(s)
}

// policyTrace is the JSON of an answer's policy_trace.
type policyTrace struct {
	PolicyVersion string `json:"policy_version"`
	Rule          string `json:"rule"`
	Decision      string `json:"decision,omitempty"`
	Route         string `json:"route,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

// Trace returns the policy_trace of an answer the outcome decided:
// {"policy_version","rule","decision" or "route","reason"}. It is nil for
// an outcome without a rule.
func (o Outcome) Trace() json.RawMessage {
	if o.Rule == nil {
		return nil
	}
	raw, err := json.Marshal(policyTrace{
		PolicyVersion: o.PolicyVersion,
		Rule:          o.Rule.Name,
		Decision:      o.Decision,
		Route:         o.Route,
		Reason:        o.Rule.Reason,
	})
	if err != nil {
		// Strings always encode.
		panic(err)
	}
	return raw
}

// String describes the outcome for logs.
func (o Outcome) String() string {
	if o.Rule == nil {
		return "no rule"
	}
	what := o.Decision
	if what == "" {
		what = "route " + o.Route
	}
	return "rule " + strconv.Quote(o.Rule.Name) + ": " + what
}
