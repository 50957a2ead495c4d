package launch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/smartfhir/smartfhir/launch"
)

// A web app with an EHR launch URL, a standalone sign-in, the redirect URL and one page that
// needs a launch.
func ExampleConfig() {
	cfg := &launch.Config{
		ClientID:       "my-app",
		RedirectURL:    "https://app.example.org/callback",
		Scopes:         []string{"openid", "fhirUser", "offline_access", "patient/Patient.rs", "patient/Observation.rs"},
		AllowedIssuers: []string{"https://ehr.example.org/fhir"},
		LandingURL:     "/summary",
	}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /launch", cfg.EHRLaunchHandler())
	mux.Handle("GET /login", cfg.StandaloneHandler("https://ehr.example.org/fhir"))
	mux.Handle("GET /callback", cfg.CallbackHandler(nil))
	mux.Handle("GET /summary", cfg.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := launch.FromRequest(r)
		fmt.Fprintf(w, "patient %s, user %s", s.Patient, s.FHIRUser)
	})))
	fmt.Println("routes ready")
	// Output: routes ready
}

// Links inside the app carry the launch handle, so that two launches in one browser stay apart.
func ExampleSession_Link() {
	s := &launch.Session{Handle: "k7Qx2"}
	fmt.Println(s.Link("/summary"))
	fmt.Println(s.Link("/obs?code=8867-4"))
	// Output:
	// /summary?handle=k7Qx2
	// /obs?code=8867-4&handle=k7Qx2
}

// Unlisted issuers fail closed, before any network request.
func ExampleConfig_Validate() {
	cfg := &launch.Config{ClientID: "my-app", RedirectURL: "https://app.example.org/callback"}
	fmt.Println(cfg.Validate())
	// Output: launch: invalid configuration: AllowedIssuers is empty: no issuer could launch this app
}

// A background job reads the patient's data after the request that started it: the handler keeps
// the launch's key with the job (encrypted: it is a bearer secret), the worker resumes the launch.
func ExampleConfig_SessionByKey() {
	jobs := make(chan string, 100) // a queue; the keys in it are secrets
	cfg := &launch.Config{
		ClientID:       "my-app",
		RedirectURL:    "https://app.example.org/callback",
		Scopes:         []string{"offline_access", "patient/Observation.rs"},
		AllowedIssuers: []string{"https://ehr.example.org/fhir"},
		SessionStore:   new(launch.MemorySessionStore), // or NewFileSessionStore, redisstore: shared with the handlers
	}
	enqueue := func(w http.ResponseWriter, r *http.Request) {
		key := launch.FromRequest(r).Key()
		jobs <- key
	}
	worker := func(ctx context.Context) error {
		s, err := cfg.SessionByKey(ctx, <-jobs)
		if err != nil {
			return err // launch.ErrNoSession: the user logged out or the session ended
		}
		fc, err := s.FHIRClient() // refreshes the token as needed, sends it to the FHIR base only
		if err != nil {
			return err
		}
		_, _, err = fc.Search(ctx, "Observation", url.Values{"patient": {s.Patient}})
		return err
	}
	_, _ = enqueue, worker
}
