package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables read by Load. An empty value counts as unset.
const (
	EnvProfile             = "TASK_RELAY_PROFILE"
	EnvConfigDir           = "TASK_RELAY_CONFIG_DIR"
	EnvStorage             = "TASK_RELAY_STORAGE"
	EnvSQLiteURL           = "TASK_RELAY_SQLITE_URL"
	EnvTransport           = "TASK_RELAY_TRANSPORT"
	EnvDataDir             = "TASK_RELAY_DATA_DIR"
	EnvPostgresURL         = "TASK_RELAY_POSTGRES_URL"
	EnvPromptsDir          = "TASK_RELAY_PROMPTS_DIR"
	EnvSchemataDir         = "TASK_RELAY_SCHEMATA_DIR"
	EnvPolicyFile          = "TASK_RELAY_POLICY_FILE"
	EnvAnswerRunnerEnabled = "TASK_RELAY_ANSWER_RUNNER_ENABLED"
	EnvLogLevel            = "TASK_RELAY_LOG_LEVEL"
)

// Flag names, as Load names them in errors.
const (
	FlagProfile   = "--profile"
	FlagConfigDir = "--config-dir"
	FlagStorage   = "--storage"
	FlagSQLite    = "--sqlite"
	FlagTransport = "--transport"
)

// Overrides are the settings given as command-line flags. A nil field was
// not given; so was one pointing to an empty string.
type Overrides struct {
	// Profile is --profile.
	Profile *string
	// ConfigDir is --config-dir.
	ConfigDir *string
	// Storage is --storage.
	Storage *string
	// SQLitePath is --sqlite: a path, file:PATH or sqlite://PATH.
	SQLitePath *string
	// Transport is --transport.
	Transport *string
}

// Load builds the configuration from flags (o), the environment (getenv;
// nil means the process environment) and config.yaml in the config dir, in
// that order of precedence, then applies defaults and validates.
//
// The config dir is --config-dir, else TASK_RELAY_CONFIG_DIR, else
// ./.mcp-task-relay. A missing config dir or config.yaml means defaults; one
// that exists but cannot be read is an error. Relative paths in config.yaml
// are resolved against the config dir, relative paths from flags and the
// environment against the working directory, and a leading ~/ against $HOME.
// All paths in the result are absolute.
func Load(o Overrides, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("config: working directory: %w", err)
	}
	home, _ := getenv("HOME")
	l := &loader{getenv: getenv, cwd: cwd, home: home}

	configDir, src := DefaultConfigDir, ""
	if v, name, ok := l.lookup(EnvConfigDir); ok {
		configDir, src = v, name
	}
	if v, ok := flag(o.ConfigDir); ok {
		configDir, src = v, FlagConfigDir
	}
	configDir, err = l.resolve(configDir, cwd, src, "")
	if err != nil {
		return nil, err
	}

	cfg, err := readFile(filepath.Join(configDir, ConfigFileName))
	if err != nil {
		return nil, err
	}
	cfg.ConfigDir = configDir

	// Paths written in the file are relative to the config dir.
	for _, f := range cfg.pathFields() {
		if *f.ptr == "" {
			continue
		}
		if *f.ptr, err = l.resolve(*f.ptr, configDir, cfg.origins[f.path], f.path); err != nil {
			l.errs = append(l.errs, err)
		}
	}

	l.applyEnv(cfg)
	l.applyFlags(cfg, o)
	if err := errors.Join(l.errs...); err != nil {
		return nil, err
	}

	if cfg.DataDir == "" && cfg.Server.DataDir == "" {
		cfg.DataDir = DefaultDataDir(getenv)
		if cfg.DataDir == "" {
			cfg.DataDir = filepath.Join(configDir, "data")
		}
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readFile parses path, returning an empty Config if it does not exist.
func readFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{origins: map[string]string{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return Parse(data, path)
}

type pathField struct {
	path string
	ptr  *string
}

// pathFields lists the path-valued fields by YAML path.
func (c *Config) pathFields() []pathField {
	return []pathField{
		{"server.dataDir", &c.Server.DataDir},
		{"server.artifactRoot", &c.Server.ArtifactRoot},
		{"server.workspaceRoot", &c.Server.WorkspaceRoot},
		{"storage.sqlitePath", &c.Storage.SQLitePath},
		{"promptsDir", &c.PromptsDir},
		{"schemataDir", &c.SchemataDir},
		{"policyFile", &c.PolicyFile},
		{"notify.webhookSecretFile", &c.Notify.WebhookSecretFile},
	}
}

type loader struct {
	getenv    func(string) (string, bool)
	cwd, home string
	errs      []error
}

// lookup returns a non-empty environment variable.
func (l *loader) lookup(name string) (string, string, bool) {
	v, ok := l.getenv(name)
	return v, name, ok && v != ""
}

func flag(p *string) (string, bool) {
	if p == nil || *p == "" {
		return "", false
	}
	return *p, true
}

func (l *loader) applyEnv(c *Config) {
	str := func(env, path string, dst *string) {
		if v, _, ok := l.lookup(env); ok {
			*dst = v
			c.setOrigin(path, env)
		}
	}
	pathVar := func(env, path string, dst *string) {
		if v, _, ok := l.lookup(env); ok {
			l.setPath(c, v, env, path, dst)
		}
	}
	str(EnvProfile, "profile", &c.Profile)
	str(EnvTransport, "transport", &c.Transport)
	str(EnvStorage, "storage.mode", &c.Storage.Mode)
	str(EnvPostgresURL, "storage.postgresUrl", &c.Storage.PostgresURL)
	str(EnvLogLevel, "logging.level", &c.Logging.Level)
	pathVar(EnvDataDir, "server.dataDir", &c.Server.DataDir)
	pathVar(EnvPromptsDir, "promptsDir", &c.PromptsDir)
	pathVar(EnvSchemataDir, "schemataDir", &c.SchemataDir)
	pathVar(EnvPolicyFile, "policyFile", &c.PolicyFile)
	if v, _, ok := l.lookup(EnvSQLiteURL); ok {
		l.setSQLite(c, v, EnvSQLiteURL)
	}
	if v, _, ok := l.lookup(EnvAnswerRunnerEnabled); ok {
		var enabled bool
		switch strings.ToLower(v) {
		case "true", "1":
			enabled = true
		case "false", "0":
		default:
			l.errs = append(l.errs, &Error{
				Source: EnvAnswerRunnerEnabled,
				Path:   "askAnswer.runner.enabled",
				Msg:    fmt.Sprintf("must be true, false, 1 or 0, got %q", v),
				Err:    ErrInvalid,
			})
			return
		}
		c.AskAnswer.Runner.Enabled = &enabled
		c.setOrigin("askAnswer.runner.enabled", EnvAnswerRunnerEnabled)
	}
}

func (l *loader) applyFlags(c *Config, o Overrides) {
	if v, ok := flag(o.Profile); ok {
		c.Profile = v
		c.setOrigin("profile", FlagProfile)
	}
	if v, ok := flag(o.Transport); ok {
		c.Transport = v
		c.setOrigin("transport", FlagTransport)
	}
	if v, ok := flag(o.Storage); ok {
		c.Storage.Mode = v
		c.setOrigin("storage.mode", FlagStorage)
	}
	if v, ok := flag(o.SQLitePath); ok {
		l.setSQLite(c, v, FlagSQLite)
	}
}

func (l *loader) setSQLite(c *Config, v, src string) {
	p, err := SQLitePathFromURL(v)
	if err != nil {
		l.errs = append(l.errs, &Error{Source: src, Path: "storage.sqlitePath", Msg: err.Error(), Err: ErrInvalid})
		return
	}
	l.setPath(c, p, src, "storage.sqlitePath", &c.Storage.SQLitePath)
}

// setPath stores a path from a flag or the environment, relative to cwd.
func (l *loader) setPath(c *Config, v, src, path string, dst *string) {
	p, err := l.resolve(v, l.cwd, src, path)
	if err != nil {
		l.errs = append(l.errs, err)
		return
	}
	*dst = p
	c.setOrigin(path, src)
}

// resolve expands a leading ~ and makes p absolute against base.
func (l *loader) resolve(p, base, src, path string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if l.home == "" {
			return "", &Error{Source: src, Path: path, Msg: fmt.Sprintf("cannot expand %q: HOME is not set", p), Err: ErrInvalid}
		}
		p = filepath.Join(l.home, p[1:])
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	return filepath.Clean(p), nil
}

// SQLitePathFromURL returns the database path of a SQLite location given as
// a plain path, file:PATH or sqlite://PATH. A query string after the URL
// forms (connection options) is dropped: the store sets its own.
func SQLitePathFromURL(s string) (string, error) {
	p := s
	for _, prefix := range []string{"sqlite://", "sqlite:", "file:"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			p, _, _ = strings.Cut(rest, "?")
			if strings.HasPrefix(p, "//") {
				// file:///abs/path: an empty authority.
				p = strings.TrimPrefix(p, "//")
				if !strings.HasPrefix(p, "/") {
					return "", fmt.Errorf("must be PATH, file:PATH or sqlite://PATH, got %q", s)
				}
			}
			break
		}
	}
	if p == "" {
		return "", fmt.Errorf("must be PATH, file:PATH or sqlite://PATH, got %q", s)
	}
	if p == ":memory:" {
		return "", fmt.Errorf("%q is not a file; use storage mode memory", s)
	}
	return p, nil
}

func (c *Config) setOrigin(path, src string) {
	if c.origins == nil {
		c.origins = map[string]string{}
	}
	c.origins[path] = src
}
