package executor

import (
	"fmt"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// landlockConfigs are the rulesets of each Landlock ABI version, from 1:
// each handles every access right its version knows, so that whatever a
// rule does not grant is denied.
var landlockConfigs = [...]landlock.Config{
	landlock.V1, landlock.V2, landlock.V3, landlock.V4, landlock.V5, landlock.V6,
	landlock.V7, landlock.V8, landlock.V9, landlock.V10, landlock.V11,
}

// landlockDevices are the device files a sandboxed program may write
// (and use ioctls on): the usual sinks and sources, and the terminal.
var landlockDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}

// LandlockSupport returns the Landlock ABI version of the running kernel
// (1 and up), or an error wrapping ErrLandlockUnsupported when the kernel
// has no Landlock or it was not enabled at boot. Doctor reports it;
// NewCommand refuses `sandbox: landlock` without it.
func LandlockSupport() (abi int, err error) {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return 0, fmt.Errorf("%w: the kernel has no Landlock or it is not enabled at boot (lsm=): %w", ErrLandlockUnsupported, err)
	}
	if v < 1 {
		return 0, fmt.Errorf("%w: Landlock ABI version %d", ErrLandlockUnsupported, v)
	}
	return v, nil
}

// applySandbox confines the calling OS thread, and so every process it
// starts from now on, to spec. The caller must hold the thread
// (runtime.LockOSThread) until it exits: the thread must never run
// another goroutine. The rest of the process is not confined.
func applySandbox(spec *sandboxSpec) error {
	abi, err := LandlockSupport()
	if err != nil {
		return err
	}
	cfg := landlockConfigs[min(abi, len(landlockConfigs))-1]
	rw := landlock.RWDirs(spec.Write...)
	if abi >= 2 {
		// Moving and linking files between the writable directories;
		// before ABI 2 the kernel always refuses it.
		rw = rw.WithRefer()
	}
	if abi >= 9 {
		// Unix sockets of the workspace only.
		rw = rw.WithResolveUnix()
	}
	rules := []landlock.Rule{
		landlock.RODirs("/"),
		rw,
		landlock.RWFiles(landlockDevices...).WithIoctlDev().IgnoreIfMissing(),
	}
	if abi >= 4 {
		for _, port := range spec.ConnectTCP {
			rules = append(rules, landlock.ConnectTCP(port))
		}
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return fmt.Errorf("landlock ruleset: %w", err)
	}
	if fd < 0 {
		return fmt.Errorf("landlock ruleset: nothing to restrict with ABI %d", abi)
	}
	defer unix.Close(fd)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if err := llsys.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("landlock_restrict_self: %w", err)
	}
	return nil
}
