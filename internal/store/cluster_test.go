package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

// registryStore is a Store (methods unused here) that keeps a registry.
type registryStore struct{ store.Store }

func (registryStore) RelayUpsert(context.Context, *store.RelayRecord) error   { return nil }
func (registryStore) RelayList(context.Context) ([]*store.RelayRecord, error) { return nil, nil }

// wrapper decorates a store without the store's optional methods.
type wrapper struct{ store.Store }

func (w wrapper) Unwrap() store.Store { return w.Store }

// plain decorates a store and hides what it wraps.
type plain struct{ store.Store }

func TestAsLooksThroughWrappers(t *testing.T) {
	inner := registryStore{}
	_, ok := store.As[store.Registry](inner)
	require.True(t, ok, "the store itself")

	wrapped := wrapper{wrapper{inner}}
	_, bare := store.Store(wrapped).(store.Registry)
	require.False(t, bare, "a type assertion does not see through the decorator")
	reg, ok := store.As[store.Registry](wrapped)
	require.True(t, ok, "As finds it two wrappers down")
	require.Equal(t, inner, reg)

	_, ok = store.As[store.Registry](plain{inner})
	require.False(t, ok, "a decorator without Unwrap hides it")
	_, ok = store.As[store.Notifier](wrapped)
	require.False(t, ok, "an interface no store in the chain has")
	_, ok = store.As[store.Registry](nil)
	require.False(t, ok)
}
