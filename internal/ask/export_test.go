package ask

import (
	"context"
	"time"
)

// SetParkHook makes s call f each time a waiter parks.
func SetParkHook(s *Service, f func(askID string)) { s.parked = f }

// Expire runs one pass of s's deadline loop.
func Expire(ctx context.Context, s *Service) (time.Time, error) { return s.expire(ctx) }
