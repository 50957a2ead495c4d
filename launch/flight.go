package launch

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
)

// flightTimeout bounds work that several requests share (a discovery, a JWK Set fetch).
const flightTimeout = 60 * time.Second

// shared runs f once for all concurrent callers with the same key (singleflight). f runs detached
// from the cancellation of the caller that started it (its values kept) and bounded by timeout, so
// that one browser going away does not fail the other launches waiting for the same result; each
// caller waits only as long as its own ctx allows, and then gets an error wrapping ctx.Err().
func shared[T any](ctx context.Context, g *singleflight.Group, key string, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return f(fctx)
	})
	var zero T
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		v, _ := r.Val.(T)
		return v, nil
	case <-ctx.Done():
		return zero, fmt.Errorf("launch: %w", ctx.Err())
	}
}
