package executor

// ShimArg is the hidden subcommand of the relay binary that runs RunShim:
// `mcp-task-relay __exec-shim -- argv...`.
const ShimArg = "__exec-shim"

// Environment through which Command hands the shim its settings. The shim
// removes them before starting the executor.
const (
	// shimParentEnv holds the pid of the relay that started the shim.
	shimParentEnv = "TASK_RELAY_SHIM_PARENT"
	// shimGraceEnv holds the SIGTERM→SIGKILL grace, as a Go duration.
	shimGraceEnv = "TASK_RELAY_SHIM_GRACE"
)
