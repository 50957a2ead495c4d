package fhirclient

import (
	"context"
	"time"
)

// SetSleepForTest replaces the retry wait of c, so that tests in package fhirclient_test do not
// sleep for real.
func SetSleepForTest(c *Client, sleep func(ctx context.Context, d time.Duration) error) {
	c.sleep = sleep
}
