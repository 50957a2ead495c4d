package smart_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

func mustPreset(t testing.TB, name string) smart.Profile {
	t.Helper()
	p, err := smart.ProfileByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProfilePresets pins the setting each preset exists for (quirks.md §4), and that every other
// setting keeps the generic value: a preset changes only what its vendor needs.
func TestProfilePresets(t *testing.T) {
	t.Parallel()
	generic := mustPreset(t, "generic")
	tests := []struct {
		name   string
		differ func(p *smart.Profile) // the settings that differ from generic, applied to a copy of it
	}{
		{"generic", func(*smart.Profile) {}},
		{"epic", func(p *smart.Profile) {
			p.ClientIDHeader, p.Accept, p.RetryBare400 = "Epic-Client-ID", "application/json+fhir", true
			p.UnsupportedOperations = []string{"$everything"}
		}},
		{"oracle", func(p *smart.Profile) {
			p.MaxRetryAfter, p.IntrospectionEndpoint = 30*time.Minute, "https://authorization.cerner.com/tokeninfo"
		}},
		{"athena", func(p *smart.Profile) { p.ForcePKCE = true }},
		{"meditech", func(p *smart.Profile) {
			p.Accept = "application/json+fhir"
			p.DiscoveryFallbacks = []smart.DiscoverySource{smart.DiscoveryCapabilityStatement, smart.DiscoveryOpenIDConfiguration}
		}},
		{"cms-bcda", func(p *smart.Profile) { p.FileNotFoundRetries = 3 }},
		{"cms-ab2d", func(p *smart.Profile) { p.MinPollInterval = 30 * time.Second }},
		{"va", func(p *smart.Profile) { p.Aud, p.RateLimitHeaders = smart.AudienceOmit, true }},
		{"hapi", func(p *smart.Profile) { p.DeleteNotFoundOK = true }},
		{"smart-sandbox", func(p *smart.Profile) { p.LenientDiscovery = true }},
	}
	if len(tests) != len(smart.ProfileNames()) {
		t.Fatalf("%d presets tested, %d exist: %v", len(tests), len(smart.ProfileNames()), smart.ProfileNames())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := mustPreset(t, tt.name)
			if err := got.Validate(); err != nil {
				t.Fatalf("preset does not validate: %v", err)
			}
			if got.Description == "" || strings.Contains(got.Description, "\n") {
				t.Errorf("description %q: want one line", got.Description)
			}
			want := generic.Clone()
			want.Name, want.Description = got.Name, got.Description
			tt.differ(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
	if generic.AssertionBackdate != smart.DefaultAssertionBackdate || !generic.RefreshClientID || !generic.RefreshAssertion ||
		generic.RetryAfterCap() != time.Hour {
		t.Errorf("generic %+v", generic)
	}
}

// TestProfileLookup: names are case-insensitive with aliases; an unknown name lists the presets.
func TestProfileLookup(t *testing.T) {
	t.Parallel()
	names := smart.ProfileNames()
	if !slices.IsSorted(names) || !slices.Contains(names, "generic") {
		t.Fatalf("names %v", names)
	}
	for in, want := range map[string]string{"epic": "epic", " EPIC ": "epic", "cerner": "oracle", "Oracle-Health": "oracle",
		"athenahealth": "athena", "bcda": "cms-bcda", "ab2d": "cms-ab2d", "smart-sandbox": "smart-sandbox"} {
		if p, ok := smart.LookupProfile(in); !ok || p.Name != want {
			t.Errorf("LookupProfile(%q) = %q, %v; want %q", in, p.Name, ok, want)
		}
	}
	_, err := smart.ProfileByName("epik")
	if !errors.Is(err, smart.ErrUnknownProfile) {
		t.Fatalf("err %v, want ErrUnknownProfile", err)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list %q", err, n)
		}
	}
	if _, ok := smart.LookupProfile(""); ok {
		t.Error(`LookupProfile("") found a profile`)
	}
}

// TestProfileCloneIndependent: presets are fresh copies; a Clone shares no slice or map.
func TestProfileCloneIndependent(t *testing.T) {
	t.Parallel()
	a := mustPreset(t, "epic")
	a.UnsupportedOperations[0] = "$changed"
	if b := mustPreset(t, "epic"); b.UnsupportedOperations[0] != "$everything" {
		t.Fatal("changing one preset copy changed the next")
	}
	p := smart.Profile{Headers: map[string]string{"X-A": "1"}, ExtraScopes: []string{"a"},
		DiscoveryFallbacks: []smart.DiscoverySource{smart.DiscoveryCapabilityStatement}, UnsupportedOperations: []string{"$x"}}
	c := p.Clone()
	c.Headers["X-A"], c.ExtraScopes[0], c.DiscoveryFallbacks[0], c.UnsupportedOperations[0] = "2", "b", smart.DiscoveryOpenIDConfiguration, "$y"
	if p.Headers["X-A"] != "1" || p.ExtraScopes[0] != "a" || p.DiscoveryFallbacks[0] != smart.DiscoveryCapabilityStatement || p.UnsupportedOperations[0] != "$x" {
		t.Fatalf("Clone shares data: %+v", p)
	}
}

func TestProfileAudience(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode   smart.AudienceMode
		base   string
		want   string
		wantOK bool
	}{
		{"", "https://ehr.example/fhir/", "https://ehr.example/fhir/", true}, // LAUNCH-05: byte for byte
		{smart.AudienceExact, "https://ehr.example/fhir", "https://ehr.example/fhir", true},
		{smart.AudienceTrimSlash, "https://ehr.example/fhir//", "https://ehr.example/fhir", true},
		{smart.AudienceTrimSlash, "https://ehr.example/fhir", "https://ehr.example/fhir", true},
		{smart.AudienceOmit, "https://ehr.example/fhir", "", false},
	}
	for _, tt := range tests {
		got, ok := smart.Profile{Aud: tt.mode}.Audience(tt.base)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%q: Audience(%q) = %q, %v; want %q, %v", tt.mode, tt.base, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, ok := mustPreset(t, "va").Audience("https://api.va.gov/fhir"); ok {
		t.Error("va sends aud")
	}
}

func TestProfileAssertionAudience(t *testing.T) {
	t.Parallel()
	const tokenURL = "https://ehr.example/oauth2/token"
	info := &smart.ServerInfo{ImplementationURL: "https://internal.ehr.example/interconnect/api/FHIR/R4"}
	tests := []struct {
		mode    smart.AssertionAudienceMode
		info    *smart.ServerInfo
		want    string
		wantErr error
	}{
		{"", info, tokenURL, nil},
		{smart.AssertionAudienceTokenURL, nil, tokenURL, nil},
		{smart.AssertionAudienceMetadata, info, info.ImplementationURL, nil},
		{smart.AssertionAudienceMetadata, &smart.ServerInfo{}, "", smart.ErrNoMetadataAudience},
		{smart.AssertionAudienceMetadata, nil, "", smart.ErrNoMetadataAudience},
	}
	for _, tt := range tests {
		got, err := smart.Profile{AssertionAud: tt.mode}.AssertionAudience(tokenURL, tt.info)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("%q: = %q, %v; want %q, %v", tt.mode, got, err, tt.want, tt.wantErr)
		}
	}
	now := time.Unix(1_700_000_000, 0)
	if got := mustPreset(t, "generic").AssertionIssuedAt(now); !got.Equal(now.Add(-20 * time.Second)) {
		t.Errorf("AssertionIssuedAt = %v", got)
	}
	if got := (smart.Profile{}).AssertionIssuedAt(now); !got.Equal(now) {
		t.Errorf("zero profile backdates: %v", got)
	}
}

// TestProfileChecks: ForcePKCE (athena, client-js #174) and LenientDiscovery (SMART launcher,
// Veradigm) relax Configuration.RequireLaunch / RequireBackend, nothing else does.
func TestProfileChecks(t *testing.T) {
	t.Parallel()
	plainOnly := &smart.Configuration{AuthorizationEndpoint: "https://e/a", TokenEndpoint: "https://e/t", CodeChallengeMethodsSupported: []string{"plain"}}
	noPKCEList := &smart.Configuration{AuthorizationEndpoint: "https://e/a", TokenEndpoint: "https://e/t"}
	noAuthorize := &smart.Configuration{TokenEndpoint: "https://e/t"}
	noKeyAuth := &smart.Configuration{TokenEndpoint: "https://e/t", TokenEndpointAuthMethodsSupported: []string{"client_secret_basic"}}
	noToken := &smart.Configuration{AuthorizationEndpoint: "https://e/a"}
	generic, athena, lenient := mustPreset(t, "generic"), mustPreset(t, "athena"), mustPreset(t, "smart-sandbox")
	tests := []struct {
		name    string
		check   func(*smart.Configuration) error
		cfg     *smart.Configuration
		wantErr error
	}{
		{"generic launch, plain only", generic.CheckLaunch, plainOnly, smart.ErrNoS256},
		{"athena launch, plain only", athena.CheckLaunch, plainOnly, nil},
		{"generic launch, no list", generic.CheckLaunch, noPKCEList, nil},
		{"athena launch, no authorize", athena.CheckLaunch, noAuthorize, smart.ErrNoAuthorizationEndpoint},
		{"athena launch, plain only, no code grant", athena.CheckLaunch, &smart.Configuration{AuthorizationEndpoint: "https://e/a", TokenEndpoint: "https://e/t",
			CodeChallengeMethodsSupported: []string{"plain"}, GrantTypesSupported: []string{"client_credentials"}}, smart.ErrGrantTypeNotSupported},
		{"lenient launch, plain only", lenient.CheckLaunch, plainOnly, nil},
		{"lenient launch, no authorize", lenient.CheckLaunch, noAuthorize, smart.ErrNoAuthorizationEndpoint},
		{"lenient launch, no token", lenient.CheckLaunch, noToken, smart.ErrMissingTokenEndpoint},
		{"generic backend, no private_key_jwt", generic.CheckBackend, noKeyAuth, smart.ErrAuthMethodNotSupported},
		{"lenient backend, no private_key_jwt", lenient.CheckBackend, noKeyAuth, nil},
		{"lenient backend, no token", lenient.CheckBackend, noToken, smart.ErrMissingTokenEndpoint},
	}
	for _, tt := range tests {
		err := tt.check(tt.cfg)
		if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestProfileScopes: the scope grammar (SCOPE-12, DISC-16) and extra scopes (Kaiser "sandbox").
func TestProfileScopes(t *testing.T) {
	t.Parallel()
	v2 := &smart.Configuration{Capabilities: []string{"permission-v2"}}
	v1 := &smart.Configuration{Capabilities: []string{"permission-v1"}}
	req := []string{"openid", "patient/Observation.rs", "patient/Patient.read"}
	tests := []struct {
		name  string
		style smart.ScopeGrammar
		extra []string
		cfg   *smart.Configuration
		want  []string
	}{
		{"auto v2 server", smart.ScopeAuto, nil, v2, []string{"openid", "patient/Observation.rs", "patient/Patient.rs"}},
		{"auto v1 server", "", nil, v1, []string{"openid", "patient/Observation.read", "patient/Patient.read"}},
		{"auto, nothing discovered", "", nil, nil, []string{"openid", "patient/Observation.rs", "patient/Patient.read"}},
		{"forced v1", smart.ScopeV1, nil, v2, []string{"openid", "patient/Observation.read", "patient/Patient.read"}},
		{"forced v2", smart.ScopeV2, nil, v1, []string{"openid", "patient/Observation.rs", "patient/Patient.rs"}},
		{"extra scope, once", "", []string{"sandbox", "openid"}, v1, []string{"openid", "patient/Observation.read", "patient/Patient.read", "sandbox"}},
	}
	for _, tt := range tests {
		p := smart.Profile{ScopeStyle: tt.style, ExtraScopes: tt.extra}
		if got := p.RequestScopes(req, tt.cfg); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// Writing v2 as v1 can make two scopes equal: one is dropped.
	if got := (smart.Profile{ScopeStyle: smart.ScopeV1}).RequestScopes([]string{"patient/Observation.r", "patient/Observation.s"}, nil); !slices.Equal(got, []string{"patient/Observation.read"}) {
		t.Errorf("duplicates kept: %v", got)
	}
}

// TestProfileHeaders: vendor headers go on every request (discovery and token too), Accept only on
// FHIR requests, and a request's own header wins.
func TestProfileHeaders(t *testing.T) {
	t.Parallel()
	epic := mustPreset(t, "epic")
	if h := epic.Header("client-1"); h.Get("Epic-Client-ID") != "client-1" || h.Get("Accept") != "" || len(h) != 1 {
		t.Errorf("Header %v", h)
	}
	if h := epic.Header(""); len(h) != 0 {
		t.Errorf("Header without a client id %v", h)
	}
	if h := epic.FHIRHeader("client-1"); h.Get("Accept") != "application/json+fhir" || h.Get("Epic-Client-ID") != "client-1" {
		t.Errorf("FHIRHeader %v", h)
	}
	p := smart.Profile{Headers: map[string]string{"x-vendor": "v", "X-Other": "o"}}
	h := http.Header{"X-Vendor": {"mine"}}
	p.ApplyHeaders(h, "")
	if h.Get("X-Vendor") != "mine" || h.Get("X-Other") != "o" {
		t.Errorf("ApplyHeaders %v", h)
	}

	var d smart.Discoverer
	mustPreset(t, "meditech").ApplyDiscoverer(&d, "c")
	if !slices.Equal(d.Fallbacks, []smart.Fallback{smart.FallbackCapabilityStatement, smart.FallbackOpenIDConfiguration}) || d.Header == nil {
		t.Errorf("ApplyDiscoverer: %+v", d)
	}
	d = smart.Discoverer{Fallbacks: []smart.Fallback{}}
	epic.ApplyDiscoverer(&d, "c")
	if len(d.Fallbacks) != 1 || d.Header.Get("Epic-Client-ID") != "c" {
		t.Errorf("ApplyDiscoverer epic: %+v", d)
	}
	d = smart.Discoverer{Fallbacks: []smart.Fallback{}}
	(smart.Profile{}).ApplyDiscoverer(&d, "c")
	if d.Fallbacks == nil || len(d.Fallbacks) != 0 {
		t.Errorf("a profile without fallbacks changed the Discoverer's: %v", d.Fallbacks)
	}
	if got := (smart.Profile{DiscoveryFallbacks: []smart.DiscoverySource{}}).Fallbacks(); got == nil || len(got) != 0 {
		t.Errorf("empty fallbacks = %#v, want empty non-nil (none)", got)
	}
}

func TestProfileJoinTypes(t *testing.T) {
	t.Parallel()
	types := []string{"Patient", "Observation"}
	for _, tt := range []struct {
		style smart.TypeParamStyle
		in    []string
		want  []string
	}{
		{"", types, []string{"Patient,Observation"}},
		{smart.TypeComma, types, []string{"Patient,Observation"}}, // Oracle Health
		{smart.TypeRepeat, types, types},
		{smart.TypeRepeat, nil, nil},
		{smart.TypeComma, nil, nil},
	} {
		if got := (smart.Profile{TypeParam: tt.style}).JoinTypes(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("%q %v: %v, want %v", tt.style, tt.in, got, tt.want)
		}
	}
}

func TestProfileCheckOperation(t *testing.T) {
	t.Parallel()
	epic := mustPreset(t, "epic")
	for _, op := range []string{"$everything", "everything", "Patient/$everything", "Patient/123/$everything"} {
		if err := epic.CheckOperation(op); !errors.Is(err, smart.ErrUnsupportedOperation) || !strings.Contains(err.Error(), `"epic"`) {
			t.Errorf("epic %s: %v", op, err)
		}
		if err := mustPreset(t, "generic").CheckOperation(op); err != nil {
			t.Errorf("generic %s: %v", op, err)
		}
	}
	if err := epic.CheckOperation("$export"); err != nil {
		t.Errorf("epic $export: %v", err)
	}
}

// TestProfileRetryWait: Retry-After first, X-RateLimit-* only with RateLimitHeaders (VA), cap 1 h by
// default, 30 min for Oracle Health.
func TestProfileRetryWait(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	generic, va := mustPreset(t, "generic"), mustPreset(t, "va")
	tests := []struct {
		name   string
		p      smart.Profile
		h      http.Header
		want   time.Duration
		wantOK bool
	}{
		{"retry-after seconds", generic, http.Header{"Retry-After": {"17"}}, 17 * time.Second, true},
		{"retry-after wins over rate limit", va, http.Header{"Retry-After": {"5"}, "X-Ratelimit-Reset": {"40"}}, 5 * time.Second, true},
		{"rate limit ignored without the setting", generic, http.Header{"X-Ratelimit-Reset": {"40"}}, 0, false},
		{"rate limit with the setting", va, http.Header{"X-Ratelimit-Reset": {"40"}}, 40 * time.Second, true},
		{"epoch-ms retry-after is garbage", va, http.Header{"Retry-After": {"1700000040000"}}, 0, false},
		{"nothing", va, http.Header{}, 0, false},
	}
	for _, tt := range tests {
		got, ok := tt.p.RetryWait(tt.h, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
	if got := mustPreset(t, "oracle").RetryAfterCap(); got != 30*time.Minute {
		t.Errorf("oracle cap %v", got)
	}
	if got := (smart.Profile{}).RetryAfterCap(); got != smart.DefaultMaxRetryAfter {
		t.Errorf("zero cap %v", got)
	}
}

func TestProfileIntrospectionURL(t *testing.T) {
	t.Parallel()
	cfg := &smart.Configuration{IntrospectionEndpoint: "https://ehr.example/introspect"}
	oracle := mustPreset(t, "oracle")
	if got := oracle.IntrospectionURL(cfg); got != "https://authorization.cerner.com/tokeninfo" {
		t.Errorf("oracle %q", got)
	}
	if got := mustPreset(t, "generic").IntrospectionURL(cfg); got != cfg.IntrospectionEndpoint {
		t.Errorf("generic %q", got)
	}
	if got := mustPreset(t, "generic").IntrospectionURL(nil); got != "" {
		t.Errorf("nil cfg %q", got)
	}
	if got := oracle.TrustedOrigins(); len(got) != 1 || !strings.HasPrefix(got[0], "https://authorization.cerner.com") || strings.Contains(got[0], "/tokeninfo") {
		t.Errorf("TrustedOrigins %v", got)
	}
	if got := mustPreset(t, "epic").TrustedOrigins(); got != nil {
		t.Errorf("epic TrustedOrigins %v", got)
	}
}

// TestProfileCanRefresh: refresh is gated on refresh_token, never on the scope (client-js #138).
func TestProfileCanRefresh(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		tok  *smart.Token
		want bool
	}{
		{nil, false},
		{&smart.Token{}, false},
		{&smart.Token{Token: &oauth2.Token{AccessToken: "a"}, Scope: "offline_access"}, false},
		{&smart.Token{Token: &oauth2.Token{AccessToken: "a", RefreshToken: "r"}, Scope: "patient/*.rs"}, true},
	} {
		if got := smart.CanRefresh(tt.tok); got != tt.want {
			t.Errorf("CanRefresh(%+v) = %v", tt.tok, got)
		}
	}
}

// TestProfileValidate: every bad setting is an ErrInvalidProfile naming its key.
func TestProfileValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key string
		p   smart.Profile
	}{
		{"name", smart.Profile{Name: "../etc"}},
		{"aud", smart.Profile{Aud: "sometimes"}},
		{"assertion_aud", smart.Profile{AssertionAud: "fhir-base"}},
		{"scope_style", smart.Profile{ScopeStyle: "v3"}},
		{"type_param", smart.Profile{TypeParam: "semicolon"}},
		{"extra_scopes", smart.Profile{ExtraScopes: []string{"bad scope"}}},
		{"extra_scopes", smart.Profile{ExtraScopes: []string{"Patient/*.read"}}},
		{"headers", smart.Profile{Headers: map[string]string{"Authorization": "Bearer x"}}},
		{"headers", smart.Profile{Headers: map[string]string{"cookie": "a=b"}}},
		{"headers", smart.Profile{Headers: map[string]string{"Accept": "text/html"}}},
		{"headers", smart.Profile{Headers: map[string]string{"Bad Name": "x"}}},
		{"headers", smart.Profile{Headers: map[string]string{"X-Inject": "a\r\nX-Evil: 1"}}},
		{"client_id_header", smart.Profile{ClientIDHeader: "Authorization"}},
		{"client_id_header", smart.Profile{ClientIDHeader: "Epic Client ID"}},
		{"accept", smart.Profile{Accept: "json"}},
		{"accept", smart.Profile{Accept: "application/json\r\nX-Evil: 1"}},
		{"unsupported_operations", smart.Profile{UnsupportedOperations: []string{"$every thing"}}},
		{"retry_after_cap", smart.Profile{MaxRetryAfter: -time.Second}},
		{"retry_after_cap", smart.Profile{MaxRetryAfter: 25 * time.Hour}},
		{"min_poll_interval", smart.Profile{MinPollInterval: 2 * time.Hour, MaxRetryAfter: 24 * time.Hour}},
		{"min_poll_interval", smart.Profile{MinPollInterval: 40 * time.Minute, MaxRetryAfter: 30 * time.Minute}},
		{"assertion_backdate", smart.Profile{AssertionBackdate: 5 * time.Minute}},
		{"file_not_found_retries", smart.Profile{FileNotFoundRetries: -1}},
		{"file_not_found_retries", smart.Profile{FileNotFoundRetries: 11}},
		{"discovery_fallbacks", smart.Profile{DiscoveryFallbacks: []smart.DiscoverySource{"webfinger"}}},
		{"discovery_fallbacks", smart.Profile{DiscoveryFallbacks: []smart.DiscoverySource{smart.DiscoveryOpenIDConfiguration, smart.DiscoveryOpenIDConfiguration}}},
		{"introspection_endpoint", smart.Profile{IntrospectionEndpoint: "http://tokeninfo.example.com/x"}},
		{"introspection_endpoint", smart.Profile{IntrospectionEndpoint: "https://user:pw@tokeninfo.example.com/x"}},
		{"introspection_endpoint", smart.Profile{IntrospectionEndpoint: "/relative"}},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if !errors.Is(err, smart.ErrInvalidProfile) || !strings.Contains(err.Error(), tt.key+": ") {
			t.Errorf("%+v: %v, want ErrInvalidProfile naming %s", tt.p, err, tt.key)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("error with a line break: %q", err)
		}
	}
	ok := smart.Profile{Name: "my-ehr.1", ExtraScopes: []string{"sandbox", "__vendor"}, Headers: map[string]string{"X-Vendor": "a b\tc"},
		Accept: "application/fhir+json, application/json;q=0.9", UnsupportedOperations: []string{"Patient/$everything", "$lastn"},
		IntrospectionEndpoint: "http://127.0.0.1:8080/introspect", MinPollInterval: time.Minute, AssertionBackdate: 2 * time.Minute}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid profile refused: %v", err)
	}
	if err := (smart.Profile{}).Validate(); err != nil {
		t.Errorf("zero profile refused: %v", err)
	}
}

func BenchmarkProfileLookup(b *testing.B) {
	for b.Loop() {
		if _, ok := smart.LookupProfile("oracle"); !ok {
			b.Fatal("no oracle")
		}
	}
}

func ExampleProfile_Audience() {
	for _, name := range []string{"generic", "va"} {
		p, _ := smart.LookupProfile(name)
		aud, ok := p.Audience("https://ehr.example/fhir/")
		fmt.Printf("%s: %q %v\n", name, aud, ok)
	}
	// Output:
	// generic: "https://ehr.example/fhir/" true
	// va: "" false
}

func ExampleProfile_JoinTypes() {
	oracle, _ := smart.LookupProfile("oracle")
	fmt.Println(oracle.JoinTypes([]string{"Patient", "Observation"}))
	fmt.Println(smart.Profile{TypeParam: smart.TypeRepeat}.JoinTypes([]string{"Patient", "Observation"}))
	// Output:
	// [Patient,Observation]
	// [Patient Observation]
}
