package smart_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

func ExampleParseScope() {
	s, err := smart.ParseScope("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Kind, s.Context, s.ResourceType, s.Perms, s.Query.Get("category"))

	_, err = smart.ParseScope("patient/Observation.sr")
	fmt.Println(errors.Is(err, smart.ErrInvalidScope), err)

	_, err = smart.ParseScope("sandbox")
	fmt.Println(errors.Is(err, smart.ErrUnknownScope))
	// Output:
	// resource patient Observation rs http://terminology.hl7.org/CodeSystem/observation-category|laboratory
	// true smart: invalid scope "patient/Observation.sr": permissions must be in cruds order without repetition (write rs)
	// true
}

func ExampleParseScopesLenient() {
	// What the server granted is the truth, whatever was asked for (SCOPE-08).
	granted := smart.ParseScopesLenient("launch/patient openid fhirUser patient/Observation.read patient/Condition.sr vendor-thing")
	fmt.Println(granted)
	fmt.Println(granted.Allows("patient", "Observation", smart.PermSearch))
	fmt.Println(granted.Allows("patient", "Observation", smart.PermCreate))
	fmt.Println(granted.Allows("user", "Observation", smart.PermRead))
	// Output:
	// launch/patient openid fhirUser patient/Observation.read patient/Condition.rs vendor-thing
	// true
	// false
	// false
}

func ExampleDiff() {
	requested := smart.MustParseScopes("launch/patient offline_access patient/AllergyIntolerance.cruds patient/Observation.rs")
	granted := smart.ParseScopesLenient("launch/patient patient/AllergyIntolerance.rs patient/*.rs")

	fmt.Println("missing:", smart.Diff(requested, granted))
	fmt.Println("extra:  ", smart.Diff(granted, requested))

	// A refresh may narrow the grant, never widen it (SCOPE-13).
	err := smart.CheckSubset(smart.MustParseScopes("patient/*.cruds"), granted)
	fmt.Println(errors.Is(err, smart.ErrScopeNotGranted))
	// Output:
	// missing: offline_access patient/AllergyIntolerance.cud
	// extra:   patient/*.rs
	// true
}

func ExampleScopes_Format() {
	scopes := smart.MustParseScopes("launch/patient openid patient/*.read user/Observation.rs user/Observation.c")
	fmt.Println(scopes.Format(smart.ScopeStyleV2))
	fmt.Println(scopes.Format(smart.ScopeStyleV1))
	// Output:
	// launch/patient openid patient/*.rs user/Observation.rs user/Observation.c
	// launch/patient openid patient/*.read user/Observation.read user/Observation.write
}

func ExampleScope_URI() {
	for _, s := range []string{"patient/*.r", "openid"} {
		uri := smart.MustParseScope(s).URI()
		back := smart.MustParseScope(uri)
		fmt.Println(uri, "->", back)
	}
	// Output:
	// http://smarthealthit.org/fhir/scopes/patient/*.r -> patient/*.r
	// http://openid.net/specs/openid-connect-core-1_0#openid -> openid
}

func ExampleConfiguration_ScopeStyle() {
	cfg, err := smart.ParseConfiguration([]byte(`{
		"token_endpoint": "https://ehr.example.org/auth/token",
		"capabilities": ["permission-v2", "client-confidential-asymmetric"]
	}`), "https://ehr.example.org/fhir")
	if err != nil {
		log.Fatal(err)
	}
	// CONV-6: system/*.rs for a permission-v2 server, system/*.read otherwise.
	fmt.Println(smart.MustParseScopes("system/*.read").Format(cfg.ScopeStyle()))
	fmt.Println(cfg.RequireBackend())
	fmt.Println(cfg.RequireLaunch())
	// Output:
	// system/*.rs
	// <nil>
	// smart: no authorization_endpoint (the server does not support a user-facing launch)
}

func ExampleDiscover() {
	ctx := context.Background()
	cfg, err := smart.Discover(ctx, nil, "https://ehr.example.org/fhir/r4")
	if err != nil {
		log.Fatal(err)
	}
	// A discovery document can name any host: send credentials only to trusted origins (DISC-07).
	if err := cfg.CheckEndpointOrigins(); err != nil {
		log.Fatal(err)
	}
	if err := cfg.RequireLaunch(); err != nil {
		log.Fatal(err)
	}
	conf := oauth2.Config{
		ClientID:    "my-app",
		Endpoint:    cfg.Endpoint(),
		RedirectURL: "https://app.example.org/callback",
		Scopes:      smart.MustParseScopes("launch/patient openid fhirUser patient/*.rs").Strings(cfg.ScopeStyle()),
	}
	verifier := oauth2.GenerateVerifier()
	fmt.Println(conf.AuthCodeURL("state", oauth2.S256ChallengeOption(verifier), smart.Audience(cfg.FHIRBase)))
}
