package cli

import (
	"os"
	"runtime/debug"
	"sync"
)

// startupGCPercent is the collector's pace (GOGC) while a long-running
// command starts: start-up allocates a few megabytes that are garbage soon
// after (parsed configs, role catalogs, compiled schemas, SQL schema),
// and collecting them twice before the relay answers its first request
// cost several milliseconds of the cold start on a 2-core machine. A
// quarter of the usual pace lets start-up finish first.
const startupGCPercent = 400

// startupGC slows the collector down for start-up, unless the user set
// GOGC, and returns the function to call once the command serves: it
// restores the usual pace and hands the start-up garbage back to the
// operating system, so that an idle relay stays small. Calling it more
// than once does nothing more.
func startupGC() (ready func()) {
	_, userSet := os.LookupEnv("GOGC")
	old := 100
	if !userSet {
		old = debug.SetGCPercent(startupGCPercent)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if !userSet {
				debug.SetGCPercent(old)
			}
			go debug.FreeOSMemory()
		})
	}
}
