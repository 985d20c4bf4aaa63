package executor

import (
	"os"
	"path/filepath"
)

// WritePrivate replaces path with data atomically, readable by its owner
// only: a new temporary file (mode 0600, whatever an earlier file at the
// path had) renamed over it. Adapters write the side files of a run (MCP
// configs, settings, session copies) with it.
func WritePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
