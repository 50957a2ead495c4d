package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/redisstore"
)

// ParseKeys reads the encryption keys, newest first, from an environment variable.
func ExampleParseKeys() {
	newest := strings.Repeat("A", 43) + "=" // base64 of 32 bytes (here all zero: use random ones)
	older := strings.Repeat("_", 43)        // the URL alphabet and no padding work too
	keys, err := redisstore.ParseKeys(newest + "," + older)
	fmt.Println(len(keys), len(keys[0]), err)

	_, err = redisstore.ParseKeys("c2hvcnQ=") // 5 bytes
	fmt.Println(errors.Is(err, redisstore.ErrConfig), err)
	// Output:
	// 2 32 <nil>
	// true redisstore: invalid configuration: key 1 is not the base64 of 32 bytes
}

// An app on several instances and a job on several workers share one Redis.
func ExampleOpen() {
	ctx := context.Background()
	keys, err := redisstore.ParseKeys(os.Getenv("SMARTFHIR_STORE_KEYS"))
	if err != nil {
		log.Fatal(err)
	}
	st, err := redisstore.Open(ctx, os.Getenv("SMARTFHIR_STORE"), redisstore.Options{Keys: keys})
	if err != nil {
		log.Fatal(err) // ErrConfig or ErrUnavailable; never the password
	}
	defer st.Close()

	app := &launch.Config{
		// ClientID, RedirectURL, Scopes, AllowedIssuers, CookieKeys (the same on every instance), …
		StateStore:   st.States(),
		SessionStore: st.Sessions(),
		OnError:      redisstore.ErrorHandler(nil), // 503 while Redis is unavailable
	}
	http.Handle("/launch", app.EHRLaunchHandler())
	http.Handle("/callback", app.CallbackHandler(nil))

	job := &backend.Config{
		// ClientID, FHIRBase, PrivateKey, …
		Store:  st.Tokens(),
		Locker: st, // one token request per expiry across all workers
	}
	_ = job.Client(ctx)
}
