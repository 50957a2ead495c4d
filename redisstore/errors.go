package redisstore

import (
	"errors"
	"net/http"

	"github.com/smartfhir/smartfhir/launch"
)

var (
	// ErrUnavailable is wrapped by every error that comes from Redis being down, slow or failing:
	// a refused connection, a call that outlived Options.Timeout, an error reply. Nothing was
	// half-written (every write is one Redis command), and the Store recovers by itself when Redis
	// comes back. Apps answer it with 503 (ErrorHandler).
	ErrUnavailable = errors.New("redis unavailable")
	// ErrConfig is wrapped by every error about unusable Options or an unusable store URL.
	ErrConfig = errors.New("invalid configuration")
)

// Error is a failed Redis call. It wraps ErrUnavailable and the cause (a net.Error,
// context.DeadlineExceeded for a call that ran out of time, or Redis's error reply); its text names
// the operation and never contains a key's value.
type Error struct {
	// Op is the operation: "load session", "take state", "lock", …
	Op string
	// Err is the cause.
	Err error
}

// Error names the operation and the cause.
func (e *Error) Error() string {
	return "redisstore: " + e.Op + ": redis unavailable: " + e.Err.Error()
}

// Unwrap returns ErrUnavailable and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// ErrorHandler wraps a launch.Config.OnError handler (nil: launch.ErrorPage) so that a launch
// failing because Redis is unavailable is answered 503 Service Unavailable with Retry-After and a
// plain message, instead of a launch error page; every other error goes to next.
//
//	cfg.OnError = redisstore.ErrorHandler(nil)
func ErrorHandler(next func(w http.ResponseWriter, r *http.Request, err error)) func(w http.ResponseWriter, r *http.Request, err error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if !errors.Is(err, ErrUnavailable) {
			if next == nil {
				launch.ErrorPage(w, r, err)
				return
			}
			next(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("The service is temporarily unavailable. Please try again in a moment.\n"))
	}
}
