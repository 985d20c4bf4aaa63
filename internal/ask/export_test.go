package ask

// SetParkHook makes s call f each time a waiter parks.
func SetParkHook(s *Service, f func(askID string)) { s.parked = f }
