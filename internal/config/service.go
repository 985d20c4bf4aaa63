package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ServiceFileName is the file in the data dir that holds the settings of
// the relay service shared by every project.
const ServiceFileName = "service.yaml"

// serviceKeys are the YAML paths (and their prefixes) that belong to the
// relay service rather than to a project: one store, one job engine, one
// HTTP API and one log per data dir.
var serviceKeys = []string{
	"storage", "server", "logging",
	"askAnswer.host", "askAnswer.port", "askAnswer.auth",
	"askAnswer.longPollTimeoutSec", "askAnswer.sseHeartbeatSec",
	"askAnswer.allowedHosts", "askAnswer.allowedOrigins",
	"notify.webhookTimeoutSec", "notify.webhookMaxAgeSec", "notify.webhookRetryMinSec", "notify.webhookRetryMaxSec",
}

// IsServiceKey reports whether the YAML path belongs to the relay
// service's settings (service.yaml in the data dir) rather than to a
// project's config.yaml.
func IsServiceKey(path string) bool {
	if path == "server.dataDir" {
		// A project's data dir names the service its fronts connect to.
		return false
	}
	for _, k := range serviceKeys {
		if path == k || strings.HasPrefix(path, k+".") || strings.HasPrefix(path, k+"[") {
			return true
		}
	}
	return false
}

// FileKeys returns the YAML paths whose values came from a file (not from
// the environment, flags or defaults), sorted.
func (c *Config) FileKeys() []string {
	var out []string
	for path, src := range c.origins {
		if strings.Contains(src, ":") && !strings.HasPrefix(src, "--") {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// LoadService builds the settings of the relay service of dataDir:
// service.yaml in dataDir (optional), then the environment (getenv; nil
// means the process environment) for TASK_RELAY_STORAGE,
// TASK_RELAY_SQLITE_URL, TASK_RELAY_POSTGRES_URL and TASK_RELAY_LOG_LEVEL,
// then defaults. Only service keys (storage, server, logging and the HTTP
// settings of askAnswer) are allowed in service.yaml; project settings
// (executors, workspace, the Answer Runner, routing) live in each
// project's config.yaml and are an error here. Relative paths in the file
// are resolved against dataDir.
func LoadService(dataDir string, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	if !filepath.IsAbs(dataDir) {
		return nil, &Error{Source: "--data-dir", Path: "server.dataDir", Msg: fmt.Sprintf("must be an absolute path, got %q", dataDir), Err: ErrInvalid}
	}
	dataDir = filepath.Clean(dataDir)
	cfg, err := readFile(filepath.Join(dataDir, ServiceFileName))
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, path := range cfg.FileKeys() {
		if path == "server.dataDir" {
			errs = append(errs, &Error{Source: cfg.origins[path], Path: path,
				Msg: "the service's data dir is where service.yaml is; it cannot move it", Err: ErrInvalid})
			continue
		}
		if !IsServiceKey(path) && !isParentOfServiceKey(path) && path != "server.dataDir" {
			errs = append(errs, &Error{Source: cfg.origins[path], Path: path,
				Msg: "is a project setting: put it in the project's config.yaml, not in " + ServiceFileName, Err: ErrInvalid})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	home, _ := getenv("HOME")
	l := &loader{getenv: getenv, cwd: dataDir, home: home}
	for _, f := range cfg.pathFields() {
		if *f.ptr == "" {
			continue
		}
		if *f.ptr, err = l.resolve(*f.ptr, dataDir, cfg.origins[f.path], f.path); err != nil {
			l.errs = append(l.errs, err)
		}
	}
	str := func(env, path string, dst *string) {
		if v, _, ok := l.lookup(env); ok {
			*dst = v
			cfg.setOrigin(path, env)
		}
	}
	str(EnvStorage, "storage.mode", &cfg.Storage.Mode)
	str(EnvPostgresURL, "storage.postgresUrl", &cfg.Storage.PostgresURL)
	str(EnvLogLevel, "logging.level", &cfg.Logging.Level)
	if v, _, ok := l.lookup(EnvSQLiteURL); ok {
		l.setSQLite(cfg, v, EnvSQLiteURL)
	}
	if err := errors.Join(l.errs...); err != nil {
		return nil, err
	}
	cfg.ConfigDir = dataDir
	cfg.DataDir = dataDir
	cfg.Server.DataDir = dataDir
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// isParentOfServiceKey reports whether path is a mapping that holds
// service keys (askAnswer), which the decoder records as well.
func isParentOfServiceKey(path string) bool {
	for _, k := range serviceKeys {
		if strings.HasPrefix(k, path+".") {
			return true
		}
	}
	return false
}
