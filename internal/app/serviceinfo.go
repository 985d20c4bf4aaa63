package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Files of the relay service in its data directory.
const (
	// ServiceInfoFile describes the running service (ServiceInfo).
	ServiceInfoFile = "service.json"
	// ServiceLockFile is held (flock) by the running service.
	ServiceLockFile = "service.lock"
	// ServiceLogFile receives the service's logs when it runs detached.
	ServiceLogFile = "service.log"
	// ServiceSocketFile is the unix socket fronts connect to.
	ServiceSocketFile = "relay.sock"
	// ServiceConfigFile holds the service-wide settings.
	ServiceConfigFile = "service.yaml"
)

// maxSocketPath keeps socket paths under the limit of sockaddr_un (108
// bytes on Linux, 104 on macOS).
const maxSocketPath = 100

// ErrNoService means no relay service runs for a data directory.
var ErrNoService = errors.New("no relay service is running")

// ServiceInfo is what a running relay service publishes in its data
// directory, for fronts, the jobs CLI and doctor.
type ServiceInfo struct {
	// PID is the service's process id.
	PID int `json:"pid"`
	// Version is the service's version.
	Version string `json:"version"`
	// DataDir is the service's data directory.
	DataDir string `json:"dataDir"`
	// Socket is the unix socket fronts connect to.
	Socket string `json:"socket"`
	// Origin is the base URL of the HTTP API (Ask/Answer, jobs, /mcp).
	Origin string `json:"origin"`
	// StartedAt is when the service started.
	StartedAt time.Time `json:"startedAt"`
}

// SocketPath returns the unix socket of the service of dataDir: relay.sock
// in the data directory, or, when that path is too long for a socket, a
// name derived from the data directory in the temporary directory.
func SocketPath(dataDir string) string {
	p := filepath.Join(dataDir, ServiceSocketFile)
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), fmt.Sprintf("mcp-task-relay-%d-%s.sock", os.Getuid(), hex.EncodeToString(sum[:8])))
}

// ReadServiceInfo returns the service description in dataDir, or an error
// wrapping ErrNoService when there is none.
func ReadServiceInfo(dataDir string) (*ServiceInfo, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, ServiceInfoFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w for data dir %s (start it with `mcp-task-relay daemon start`)", ErrNoService, dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read service info: %w", err)
	}
	var info ServiceInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("read service info %s: %w", filepath.Join(dataDir, ServiceInfoFile), err)
	}
	return &info, nil
}

// writeServiceInfo publishes info atomically (temp file, fsync, rename).
func writeServiceInfo(dataDir string, info *ServiceInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, ServiceInfoFile)
	tmp, err := os.CreateTemp(dataDir, ".service-*.json")
	if err != nil {
		return fmt.Errorf("write service info: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write service info: %w", err)
	}
	return nil
}
