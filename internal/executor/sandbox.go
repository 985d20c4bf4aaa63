package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
)

// Sandboxes a Command can run in (CommandConfig.Sandbox).
const (
	// SandboxNone runs the command with the relay's own rights.
	SandboxNone = ""
	// SandboxLandlock confines the command with Landlock (Linux 5.13 and
	// later, no privileges needed): it may write only below its workspace,
	// the job's MetaDir and a private temporary directory (TMPDIR), read
	// and run programs anywhere, and, where the kernel's Landlock ABI is 4
	// or later, make TCP connections only to the relay's port and bind no
	// TCP port; from ABI 6 it cannot signal processes outside the sandbox
	// nor reach their abstract unix sockets.
	SandboxLandlock = "landlock"
)

// ErrLandlockUnsupported is returned where the kernel offers no Landlock:
// not Linux, a kernel before 5.13, or Landlock not enabled at boot (the
// lsm= kernel parameter).
var ErrLandlockUnsupported = errors.New("landlock is not supported here")

// shimSandboxEnv holds the sandbox the shim applies, as JSON (sandboxSpec).
const shimSandboxEnv = "TASK_RELAY_SHIM_SANDBOX"

// sandboxSpec is what the shim confines the executor to before starting
// it.
type sandboxSpec struct {
	// Kind is SandboxLandlock.
	Kind string `json:"kind"`
	// Write lists the absolute paths of the directories the executor may
	// change (everything below them).
	Write []string `json:"write"`
	// ConnectTCP lists the TCP ports the executor may connect to.
	ConnectTCP []uint16 `json:"connectTCP,omitempty"`
}

// validSandbox checks a CommandConfig.Sandbox value against what this
// system offers; support reports the Landlock ABI (LandlockSupport).
func validSandbox(kind, shim string, support func() (int, error)) error {
	switch kind {
	case SandboxNone:
		return nil
	case SandboxLandlock:
		if shim == "" {
			return errors.New("landlock needs the executor shim (the relay binary) to apply it")
		}
		if _, err := support(); err != nil {
			return fmt.Errorf("refusing to run unsandboxed: %w", err)
		}
		return nil
	}
	return fmt.Errorf("unknown sandbox %q; known: %q", kind, SandboxLandlock)
}

// newSandboxSpec returns the sandbox of a run of req: writes below its
// workdir, its MetaDir and tmp, connections to the port of the relay's
// loopback endpoint (req.RelayMCPURL).
func newSandboxSpec(req *Request, tmp string) (*sandboxSpec, error) {
	spec := &sandboxSpec{Kind: SandboxLandlock}
	for _, dir := range []string{req.Workdir, req.MetaDir, tmp} {
		if dir == "" {
			continue
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		spec.Write = append(spec.Write, abs)
	}
	if port, ok := loopbackPort(req.RelayMCPURL); ok {
		spec.ConnectTCP = append(spec.ConnectTCP, port)
	}
	return spec, nil
}

// loopbackPort returns the port of rawURL when it names a loopback
// address (127.0.0.0/8, ::1 or localhost).
func loopbackPort(rawURL string) (uint16, bool) {
	if rawURL == "" {
		return 0, false
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, false
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return 0, false
	}
	p := u.Port()
	if p == "" {
		switch u.Scheme {
		case "http":
			p = "80"
		case "https":
			p = "443"
		}
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return 0, false
	}
	return uint16(port), true
}

// encode returns spec as the value of shimSandboxEnv.
func (s *sandboxSpec) encode() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // strings and numbers only
	}
	return string(b)
}
