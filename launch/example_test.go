package launch_test

import (
	"fmt"
	"net/http"

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
