package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/mcpserver"
)

// StandaloneOptions configure RunStandalone.
type StandaloneOptions struct {
	// Config is the project's configuration, which is also the service's.
	// Required.
	Config *config.Config
	// Overrides are the flags Config was loaded with; reloads of the
	// project's files apply them again. Defaults to none.
	Overrides config.Overrides
	// Stdin and Stdout carry the MCP session (stdio transport). With
	// Config.Transport http they are not used.
	Stdin  io.Reader
	Stdout io.Writer
	// Logger receives structured logs. Required.
	Logger *slog.Logger
	// Version is reported to clients.
	Version string
	// Ready, when set, is called once the relay serves: on stdio after the
	// first line (the initialize reply) is written, over HTTP once it
	// listens. It replaces the default, which hands the start-up garbage
	// back to the OS.
	Ready func()
	// started, when set (tests), is called with the service once it runs.
	started func(*Service)
}

// RunStandalone runs the whole relay in this process for one project, as
// in a container or a test: the MCP session on stdio (or, with transport
// http, MCP over Streamable HTTP at /mcp only) until the client goes away
// or ctx ends; then running jobs are released for retry.
func RunStandalone(ctx context.Context, o StandaloneOptions) error {
	cfg, log := o.Config, o.Logger
	svc, err := New(ctx, Options{Config: cfg, Logger: log, Version: o.Version, Only: cfg.ConfigDir})
	if err != nil {
		return err
	}
	svc.projects.only, svc.projects.onlyOverrides = cfg.ConfigDir, o.Overrides
	p, err := svc.projects.open(ctx, cfg.ConfigDir, nil)
	if err == nil {
		err = p.Err()
	}
	if err == nil {
		err = svc.Start(ctx)
	}
	if err != nil {
		_ = svc.Close(0)
		return err
	}
	defer svc.Close(0)
	attrs := []any{"version", o.Version, "mode", "standalone", "profile", cfg.Profile, "storage", cfg.Storage.Mode,
		"executors", cfg.Executors.Names(), "instance", svc.relay.InstanceID(), "origin", svc.origin}
	if cfg.Storage.Mode == config.StorageSQLite {
		attrs = append(attrs, "sqlite", cfg.Storage.SQLitePath)
	}
	log.Info("relay ready", attrs...)
	if o.started != nil {
		o.started(svc)
	}
	// Without its HTTP API the relay would hand executors a dead address:
	// it stops, with the listener's error.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case <-svc.HTTPFailed():
			log.Error("relay stopping: its HTTP API is gone", "err", svc.HTTPErr())
			stop(svc.HTTPErr())
		case <-runCtx.Done():
		}
	}()
	// Startup (roles, schemas, SDK initialisation) leaves garbage behind;
	// hand it back to the OS so that an idle relay stays small.
	ready := o.Ready
	if ready == nil {
		ready = debug.FreeOSMemory
	}
	if cfg.Transport == config.TransportHTTP {
		go ready()
		log.Info("serving MCP over Streamable HTTP only", "url", svc.origin+"/mcp")
		<-runCtx.Done()
		log.Info("relay stopping")
		return svc.HTTPErr()
	}
	// On stdio, once the client has its initialize reply (the first line
	// written): the forced collection would otherwise compete with the
	// reply for the CPU.
	out := &afterFirstWrite{Writer: o.Stdout, then: ready}
	// A malformed line gets a JSON-RPC error and the session goes on; the
	// SDK's own IOTransport would end it (and with it every running job).
	t := &mcpserver.LineTransport{Reader: io.NopCloser(o.Stdin), Writer: nopWriteCloser{out}, Logger: log}
	err = p.mcp.Run(runCtx, t)
	if err := svc.HTTPErr(); err != nil {
		return err
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
		return err
	}
	log.Info("relay stopping")
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// afterFirstWrite is a writer that starts then on a goroutine once its
// first write has returned.
type afterFirstWrite struct {
	io.Writer
	once sync.Once
	then func()
}

func (w *afterFirstWrite) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.once.Do(func() { go w.then() })
	return n, err
}
