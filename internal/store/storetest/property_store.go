package storetest

import (
	"context"
	"flag"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

// PropertyChecks is how many random action sequences the state-machine
// property runs against each store by default, instead of rapid's 100:
// enough to exercise every action, cheap enough for `go test ./...`. An
// explicit count wins: the RAPID_CHECKS environment variable or the
// -rapid.checks flag (CI runs the property with RAPID_CHECKS=100 in a step
// of its own).
const PropertyChecks = 20

// init lowers the default of rapid's -rapid.checks flag to PropertyChecks
// in the test binaries that use this package, unless RAPID_CHECKS sets
// it. It runs before the test binary parses its flags, so -rapid.checks
// on the command line still wins.
func init() {
	if _, set := os.LookupEnv("RAPID_CHECKS"); set {
		return
	}
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	def := strconv.Itoa(PropertyChecks)
	if err := f.Value.Set(def); err != nil {
		panic(err)
	}
	f.DefValue = def
}

// Emptier is a store that tests can empty in place. The state-machine
// property needs an empty store for every check: it empties one store
// that is an Emptier rather than open (and migrate) a new one per check.
type Emptier interface {
	// EmptyForTest deletes every row of the store, leaving it as a newly
	// opened (migrated, empty) store would be.
	EmptyForTest(ctx context.Context) error
}

// freshStores returns a function that gives each check of a property an
// empty store: the one store newStore makes for t, emptied before every
// check but the first when it is an Emptier, else a new store from
// newStore per check (all closed when t ends).
func freshStores(t *testing.T, newStore func(t *testing.T) store.Store) func(rt *rapid.T) *bundle {
	t.Helper()
	first := setup(t, newStore)
	used := false
	return func(rt *rapid.T) *bundle {
		if !used {
			used = true
			return first
		}
		e, ok := first.store.(Emptier)
		if !ok {
			return setup(t, newStore)
		}
		require.NoError(rt, e.EmptyForTest(first.ctx), "empty the store for the next check")
		return first
	}
}

// Reuse turns newStore into a constructor for Exercise that recycles
// stores: when a subtest that passed ends, its store is emptied (it must
// be an Emptier) and handed to a later subtest, so the suite opens about
// as many stores as subtests run at once rather than one per subtest.
// Stores come from newStore(t) and close when t ends; the store of a
// failed subtest is not handed on.
func Reuse(t *testing.T, newStore func(t *testing.T) store.Store) func(t *testing.T) store.Store {
	t.Helper()
	var mu sync.Mutex
	var free []store.Store
	return func(sub *testing.T) store.Store {
		sub.Helper()
		mu.Lock()
		var s store.Store
		if n := len(free); n > 0 {
			s, free = free[n-1], free[:n-1]
		}
		mu.Unlock()
		if s == nil {
			s = newStore(t)
		}
		e, ok := s.(Emptier)
		require.True(sub, ok, "storetest.Reuse: %T is not an Emptier", s)
		sub.Cleanup(func() {
			if sub.Failed() {
				return
			}
			// A fresh context: the subtest's is canceled by now.
			require.NoError(sub, e.EmptyForTest(context.Background()), "empty the store for the next subtest")
			mu.Lock()
			free = append(free, s)
			mu.Unlock()
		})
		return s
	}
}
