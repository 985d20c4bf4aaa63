package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Resource URIs.
const (
	uriPrefix = "mcp://jobs/"
	listURI   = uriPrefix + "list"
	jsonMIME  = "application/json"
)

func statusURI(jobID string) string { return uriPrefix + jobID + "/status" }
func eventsURI(jobID string) string { return uriPrefix + jobID + "/events" }
func asksURI(jobID string) string   { return uriPrefix + jobID + "/asks" }

// mimeTypes maps each artifact kind to the MIME type it is served with.
var mimeTypes = map[relaytype.ArtifactKind]string{
	relaytype.ArtifactPatch: "text/x-diff",
	relaytype.ArtifactOut:   "text/markdown",
	relaytype.ArtifactLogs:  "text/plain",
	relaytype.ArtifactPR:    jsonMIME,
}

// resourceKind says which resource a URI names.
type resourceKind int

const (
	resList resourceKind = iota
	resStatus
	resEvents
	resArtifact
	resAsks
)

// resourceRef is a parsed resource URI.
type resourceRef struct {
	kind     resourceKind
	jobID    string
	artifact relaytype.ArtifactKind
}

// parseURI parses the URIs this server may serve (Server.lookup says
// whether it does). Job ids are checked for their shape, artifact kinds
// against the fixed list.
func parseURI(uri string) (resourceRef, bool) {
	if uri == listURI {
		return resourceRef{kind: resList}, true
	}
	rest, ok := strings.CutPrefix(uri, uriPrefix)
	if !ok {
		return resourceRef{}, false
	}
	parts := strings.Split(rest, "/")
	if !relaytype.ValidJobID(parts[0]) {
		return resourceRef{}, false
	}
	ref := resourceRef{jobID: parts[0]}
	switch {
	case len(parts) == 2 && parts[1] == "status":
		ref.kind = resStatus
	case len(parts) == 2 && parts[1] == "events":
		ref.kind = resEvents
	case len(parts) == 2 && parts[1] == "asks":
		ref.kind = resAsks
	case len(parts) == 3 && parts[1] == "artifacts" && relaytype.ArtifactKind(parts[2]).Valid():
		ref.kind, ref.artifact = resArtifact, relaytype.ArtifactKind(parts[2])
	default:
		return resourceRef{}, false
	}
	return ref, true
}

func (s *Server) addResources() {
	s.mcp.AddResource(&mcp.Resource{
		URI:         listURI,
		Name:        "jobs",
		Title:       "Jobs",
		Description: fmt.Sprintf("The newest %d jobs, as jobs_list returns them: {items, total, hasMore}. Subscribe to be told when any job changes state.", maxListLimit),
		MIMEType:    jsonMIME,
	}, s.readResource)
	s.mcp.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: uriPrefix + "{jobId}/status",
		Name:        "job-status",
		Title:       "Job status",
		Description: "A job's status, as jobs_get returns it. Subscribe to get notifications/resources/updated on every state change and stored artifact; re-read it then.",
		MIMEType:    jsonMIME,
	}, s.readResource)
	s.mcp.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: uriPrefix + "{jobId}/events",
		Name:        "job-events",
		Title:       "Job events",
		Description: `A job's audit log, oldest first: a JSON array of {id, jobId, ts, type, payload} with type submitted, transition (payload {from, to, stateVersion, attempt, reasonCode?, summary?}), ` +
			`phase (payload {phase, attempt}: preparing workspace, running or collecting artifacts), artifact, heartbeat or log (payload {text}).`,
		MIMEType: jsonMIME,
	}, s.readResource)
	s.mcp.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: uriPrefix + "{jobId}/artifacts/{kind}",
		Name:        "job-artifact",
		Title:       "Job artifact",
		Description: `One artifact of a job; kind is patch.diff (text/x-diff: the change as a unified diff against the job's baselineCommit), ` +
			`out.md (text/markdown: test plan and notes), logs.txt (text/plain: executor output) or pr.json (application/json). ` +
			`_meta carries the SHA-256 digest and size. An artifact that does not exist (yet) is resource-not-found; jobs_get lists those that do. ` +
			`Exception: logs.txt of a job still RUNNING or WAITING_ON_ANSWER is its output so far, with the first line "[partial: job RUNNING, output so far]" ` +
			`and _meta {partial: true, size} instead of a digest; once the job ends it is the stored artifact.`,
	}, s.readResource)
	if s.asks != nil {
		s.mcp.AddResourceTemplate(&mcp.ResourceTemplate{
			URITemplate: uriPrefix + "{jobId}/asks",
			Name:        "job-asks",
			Title:       "Job asks",
			Description: `The questions a job's executor asked, oldest first, in every status, as asks_list {jobId, status: "ALL"} returns them: {items, total}. ` +
				`Subscribe to be told when an ask is created or answered; answer pending ones with asks_answer.`,
			MIMEType: jsonMIME,
		}, s.readResource)
	}
}

// lookup parses a resource URI and reports whether this server serves
// it: the asks resource exists only when the server has an ask service.
func (s *Server) lookup(uri string) (resourceRef, bool) {
	ref, ok := parseURI(uri)
	if !ok || (ref.kind == resAsks && s.asks == nil) {
		return resourceRef{}, false
	}
	return ref, true
}

// readResource serves every resource of the server. Unknown jobs and
// artifacts, and URIs that match a template but not a real resource, are
// the SDK's resource-not-found error.
func (s *Server) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	ref, ok := s.lookup(uri)
	if !ok {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	var contents *mcp.ResourceContents
	var err error
	switch ref.kind {
	case resList:
		contents, err = jsonContents(s.listJobs(ctx, s.jobs.List, "", maxListLimit, 0))
	case resStatus:
		contents, err = jsonContents(s.status(ctx, ref.jobID))
	case resEvents:
		contents, err = jsonContents(s.events(ctx, ref.jobID))
	case resArtifact:
		contents, err = s.artifact(ctx, ref.jobID, ref.artifact)
	case resAsks:
		contents, err = jsonContents(s.jobAsks(ctx, ref.jobID))
	}
	if err != nil {
		if errors.Is(err, relaytype.ErrJobNotFound) || errors.Is(err, relaytype.ErrArtifactNotFound) {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	contents.URI = uri
	return &mcp.ReadResourceResult{
		// Job data is the user's code and output: not for shared caches.
		Cacheable: mcp.Cacheable{CacheScope: "private"},
		Contents:  []*mcp.ResourceContents{contents},
	}, nil
}

func jsonContents[T any](v T, err error) (*mcp.ResourceContents, error) {
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &mcp.ResourceContents{MIMEType: jsonMIME, Text: string(data)}, nil
}

func (s *Server) events(ctx context.Context, jobID string) ([]*relaytype.Event, error) {
	evs, err := s.jobs.Events(ctx, jobID, 0, 0)
	if err != nil {
		return nil, err
	}
	if evs == nil {
		evs = []*relaytype.Event{} // [] rather than null
	}
	return evs, nil
}

// LogsReader is the optional part of Jobs that serves the logs.txt of a
// job that is still running; *relay.Relay implements it. With it,
// mcp://jobs/{jobId}/artifacts/logs.txt of a running job is its output so
// far, marked partial.
type LogsReader interface {
	// ReadLogs returns the stored logs.txt of a job (partial false) or,
	// while it runs, its output so far (partial true).
	ReadLogs(ctx context.Context, id string) (data []byte, a *relaytype.Artifact, partial bool, err error)
}

func (s *Server) artifact(ctx context.Context, jobID string, kind relaytype.ArtifactKind) (*mcp.ResourceContents, error) {
	var (
		data    []byte
		a       *relaytype.Artifact
		partial bool
		err     error
	)
	if lr, ok := s.jobs.(LogsReader); ok && kind == relaytype.ArtifactLogs {
		data, a, partial, err = lr.ReadLogs(ctx, jobID)
	} else {
		data, a, err = s.jobs.ReadArtifact(ctx, jobID, kind)
	}
	if err != nil {
		return nil, err
	}
	c := &mcp.ResourceContents{
		MIMEType: mimeTypes[kind],
		Meta:     mcp.Meta{"digest": a.Digest, "size": a.Size},
	}
	if partial {
		// Not the artifact: what the job has written so far, which the
		// final logs.txt (and its digest) will supersede.
		c.Meta = mcp.Meta{"partial": true, "size": a.Size}
	}
	// Resource text must be UTF-8; executor logs may not be.
	if utf8.Valid(data) {
		c.Text = string(data)
	} else {
		c.Blob = data
	}
	return c, nil
}
