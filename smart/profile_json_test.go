package smart_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smartfhir/smartfhir/smart"
)

// TestProfileJSONRoundTrip: every preset survives its JSON form unchanged, and that form has every
// setting (`smartfhir profiles --json` prints them all).
func TestProfileJSONRoundTrip(t *testing.T) {
	t.Parallel()
	keys := smart.ProfileKeys()
	for _, p := range smart.Presets() {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok && k != "preset" {
				t.Errorf("%s: key %q missing from %s", p.Name, k, b)
			}
		}
		got, err := smart.ParseProfile(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", p.Name, err, b)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", p.Name, diff)
		}
	}
	if !slices.Contains(keys, "retry_after_cap") || !slices.Contains(keys, "preset") || slices.Contains(keys, "") {
		t.Errorf("keys %v", keys)
	}
}

// TestProfileJSONPreset: a user profile names a preset and overrides some settings; lists replace,
// headers add.
func TestProfileJSONPreset(t *testing.T) {
	t.Parallel()
	p, err := smart.ParseProfile([]byte(`{"preset":"Epic","name":"my-epic","retry_after_cap":"10m",
		"headers":{"X-Site":"north"},"extra_scopes":["sandbox"],"unsupported_operations":[],"assertion_aud":"metadata"}`))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := smart.LookupProfile("epic")
	want.Name, want.MaxRetryAfter, want.Headers, want.ExtraScopes = "my-epic", 10*time.Minute, map[string]string{"X-Site": "north"}, []string{"sandbox"}
	want.UnsupportedOperations, want.AssertionAud = nil, smart.AssertionAudienceMetadata
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if p, err := smart.ParseProfile([]byte(`{}`)); err != nil || !cmp.Equal(p, smart.Profile{}) {
		t.Errorf("{} = %+v, %v; want the zero profile", p, err)
	}
	if p, err := smart.ParseProfile([]byte(`{"preset":"meditech","discovery_fallbacks":[]}`)); err != nil || p.DiscoveryFallbacks == nil || len(p.Fallbacks()) != 0 {
		t.Errorf("empty fallbacks: %+v, %v", p.DiscoveryFallbacks, err)
	}
}

// TestProfileJSONErrors: a typo is an error naming the key; unknown presets list the known ones; wrong
// types and bad values name the setting.
func TestProfileJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		is         error
		contains   []string
	}{
		{"unknown key", `{"preset":"epic","retry_after":"5m"}`, smart.ErrUnknownProfileKey, []string{`"retry_after"`, "retry_after_cap", "force_pkce"}},
		{"unknown preset", `{"preset":"epik"}`, smart.ErrUnknownProfile, []string{`"epik"`, "epic", "oracle", "generic"}},
		{"wrong type", `{"force_pkce":"yes"}`, smart.ErrInvalidProfile, []string{"force_pkce", "boolean"}},
		{"wrong list type", `{"extra_scopes":"sandbox"}`, smart.ErrInvalidProfile, []string{"extra_scopes", "list"}},
		{"number duration", `{"retry_after_cap":300}`, smart.ErrInvalidProfile, []string{"300", "duration"}},
		{"bad duration", `{"min_poll_interval":"5 minutes"}`, smart.ErrInvalidProfile, []string{"5 minutes"}},
		{"bad enum", `{"aud":"none"}`, smart.ErrInvalidProfile, []string{"aud", "omit"}},
		{"credential header", `{"headers":{"Authorization":"Bearer abc"}}`, smart.ErrInvalidProfile, []string{"Authorization"}},
		{"trailing data", `{"aud":"omit"} {}`, smart.ErrInvalidProfile, []string{"after top-level value"}},
		{"not an object", `["epic"]`, nil, []string{"smart: profile"}},
		{"preset not a string", `{"preset":7}`, nil, []string{"smart: profile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := smart.ParseProfile([]byte(tt.body))
			if err == nil || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err %v, want %v", err, tt.is)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestProfileJSONEmbedded: a Profile inside another document (the CLI's config file) is strict too,
// whatever decoder reads the document.
func TestProfileJSONEmbedded(t *testing.T) {
	t.Parallel()
	var doc struct {
		Quirks smart.Profile `json:"quirks"`
	}
	err := json.Unmarshal([]byte(`{"quirks":{"preset":"va","forcepkce":true}}`), &doc)
	if !errors.Is(err, smart.ErrUnknownProfileKey) || !strings.Contains(err.Error(), `"forcepkce"`) {
		t.Fatalf("err %v", err)
	}
	if err := json.Unmarshal([]byte(`{"quirks":{"preset":"va","force_pkce":true}}`), &doc); err != nil || doc.Quirks.Name != "va" || !doc.Quirks.ForcePKCE || !doc.Quirks.RateLimitHeaders {
		t.Fatalf("%+v, %v", doc.Quirks, err)
	}
}

func ExampleParseProfile() {
	p, err := smart.ParseProfile([]byte(`{"preset": "oracle", "name": "north-campus", "retry_after_cap": "15m"}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Name, p.RetryAfterCap(), p.IntrospectionEndpoint)

	_, err = smart.ParseProfile([]byte(`{"preset": "oracle", "retry_after": "15m"}`))
	fmt.Println(errors.Is(err, smart.ErrUnknownProfileKey))
	// Output:
	// north-campus 15m0s https://authorization.cerner.com/tokeninfo
	// true
}
