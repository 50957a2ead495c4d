package launch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/launch"
)

// TestSharedDiscoveryOutlivesCaller: concurrent launches against one issuer share one discovery
// request; the first caller giving up (its browser went away) neither fails the others with its
// context.Canceled nor makes them wait past their own context (LAUNCH-02 discovery, CONV-2).
func TestSharedDiscoveryOutlivesCaller(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	var once sync.Once
	e := newEnv(t, envOptions{wrap: func(sb http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == smartConfigPath {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			sb.ServeHTTP(w, r)
		})
	}})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	start := func(ctx context.Context) error {
		_, err := e.cfg.AuthorizeURL(ctx, httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil),
			launch.Request{Issuer: e.fhir})
		return err
	}

	ctxA, cancelA := context.WithCancel(t.Context())
	errA := make(chan error, 1)
	go func() { errA <- start(ctxA) }()
	<-arrived // A's discovery is in flight
	errB := make(chan error, 1)
	go func() { errB <- start(t.Context()) }()
	time.Sleep(100 * time.Millisecond) // B joins A's flight

	// A caller whose context ends stops waiting at once, flight or not.
	ctxC, cancelC := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancelC()
	began := time.Now()
	if err := start(ctxC); !errors.Is(err, context.DeadlineExceeded) || time.Since(began) > 5*time.Second {
		t.Errorf("caller C = %v after %v, want its own 50 ms deadline", err, time.Since(began))
	}

	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("caller A = %v, want context.Canceled", err)
	}
	time.Sleep(50 * time.Millisecond) // an aborted flight would have failed B by now
	once.Do(func() { close(release) })
	if err := <-errB; err != nil {
		t.Fatalf("caller B failed with the first caller's cancellation: %v", err)
	}
}
