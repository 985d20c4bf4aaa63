//go:build unix && !linux

package executor

// applySandbox refuses: there is no Landlock here.
func applySandbox(*sandboxSpec) error {
	_, err := LandlockSupport()
	return err
}
