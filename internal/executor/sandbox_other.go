//go:build !linux

package executor

import "fmt"

// LandlockSupport reports that there is no Landlock: it is a Linux
// security module. The error wraps ErrLandlockUnsupported.
func LandlockSupport() (abi int, err error) {
	return 0, fmt.Errorf("%w: Landlock is a Linux feature", ErrLandlockUnsupported)
}
