package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/oauth2"
)

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// tokenCmp compares Tokens: the embedded *oauth2.Token by its exported fields, raw JSON by meaning.
var tokenCmp = cmp.Options{
	cmpopts.IgnoreUnexported(oauth2.Token{}),
	cmpopts.EquateEmpty(),
	cmp.FilterValues(func(a, b json.RawMessage) bool { return len(a) > 0 && len(b) > 0 },
		cmp.Transformer("compactJSON", func(m json.RawMessage) string {
			var b bytes.Buffer
			if json.Compact(&b, m) != nil {
				return string(m)
			}
			return b.String()
		})),
}

func bearer(access string, life time.Duration) *oauth2.Token {
	return &oauth2.Token{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(life / time.Second), Expiry: testNow.Add(life)}
}

// Realistic responses from testdata/token: TOK-02, TOK-03, TOK-06, TOK-08, TOK-09, TOK-10.
func TestParseTokenResponseFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want *Token
	}{
		{"ehr-launch.json", &Token{
			Token: func() *oauth2.Token {
				o := bearer("m7rt6i7s9nuxkjvi8vsx", time.Hour)
				o.RefreshToken = "tGzv3JOkF0XG5Qx2TlKWIA"
				return o
			}(),
			Scope:   "launch openid fhirUser patient/Patient.r patient/Observation.rs offline_access",
			IDToken: "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJmYWtlIn0.c2lnbmF0dXJl",
			LaunchContext: LaunchContext{Patient: "123", Encounter: "enc-456", NeedPatientBanner: true,
				SmartStyleURL: "https://ehr.example.org/styles/v1.json", Intent: "reconcile-medications", Tenant: "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"},
		}},
		{"standalone.json", &Token{
			Token: func() *oauth2.Token {
				o := bearer("i8hweunweunweofiwweoijewiwe", time.Hour)
				o.RefreshToken = "t-refresh-0001"
				return o
			}(),
			Scope:         "launch/patient openid fhirUser patient/*.rs offline_access",
			IDToken:       "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJmYWtlIn0.c2lnbmF0dXJl",
			LaunchContext: LaunchContext{Patient: "smart-1288992"},
		}},
		{"backend.json", &Token{Token: bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiYWNrZW5kIn0.ZmFrZQ", 5*time.Minute), Scope: "system/*.rs"}},
		{"quirks-bcda-string-expiry.json", &Token{Token: bearer("bcda-opaque-token", 20*time.Minute), Scope: "system/*.read",
			Warnings: []string{"expires_in: a string where a number belongs"}}}, // TOK-03, CONV-4
		{"fhircontext-2.0.json", &Token{Token: bearer("ctx20", time.Hour), Scope: "launch patient/*.rs", LaunchContext: LaunchContext{
			Patient: "123", FHIRContext: []FHIRContextItem{{Reference: "DiagnosticReport/123", Role: "launch"}, {Reference: "Organization/789", Role: "launch"}}}}},
		{"fhircontext-2.1.json", &Token{Token: bearer("ctx21", time.Hour), Scope: "launch patient/*.rs", LaunchContext: LaunchContext{
			Patient: "123", FHIRContext: []FHIRContextItem{
				{Reference: "DiagnosticReport/123", Role: "launch"},
				{Reference: "Organization/789", Role: "launch"},
				{Reference: "List/A", Role: "https://example.org/med-list-at-home"},
				{Canonical: "http://example.org/Questionnaire/intake|1.0", Type: "Questionnaire", Role: "launch"},
				{Identifier: json.RawMessage(`{"system":"urn:oid:1.2.3","value":"abc"}`), Type: "ImagingStudy", Role: "launch"},
				{Reference: "Patient/456", Role: "https://example.org/roles/guarantor"},
			}}}},
		{"fhircontext-bad-items.json", &Token{Token: bearer("ctxbad", time.Hour), Scope: "launch",
			LaunchContext: LaunchContext{FHIRContext: []FHIRContextItem{{Reference: "Observation/3", Role: "launch"}}},
			Warnings: []string{
				"fhirContext[0]: none of reference, canonical, identifier; dropped",
				"fhirContext[1]: empty role; dropped",
				"fhirContext[2]: neither a string nor an object; dropped",
				"fhirContext[3]: not a relative reference; dropped",
				"fhirContext[4]: not a relative reference; dropped",
			}}},
		{"extensions.json", &Token{Token: bearer("ext", time.Hour), Scope: "launch patient/*.rs", LaunchContext: LaunchContext{
			Patient: "123", Extensions: map[string]json.RawMessage{
				"__darkMode": json.RawMessage(`true`),
				"https://ehr.example.org/props/dark-mode": json.RawMessage(`{"enabled":true,"contrast":"high"}`),
			}}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTokenResponse(loadTestdata(t, "token", tt.file), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, tokenCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// It still works as an *oauth2.Token, Extra included.
			if got.Extra("scope") != tt.want.Scope || got.Type() != "Bearer" {
				t.Errorf("Extra(scope) = %v, Type() = %q", got.Extra("scope"), got.Type())
			}
		})
	}
}

// TOK-08: both fhirContext shapes yield the same model.
func TestFHIRContextShapesAgree(t *testing.T) {
	t.Parallel()
	v20, err := ParseTokenResponse(loadTestdata(t, "token", "fhircontext-2.0.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	v21, err := ParseTokenResponse(loadTestdata(t, "token", "fhircontext-2.1.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v20.FHIRContext, v21.FHIRContext[:2]); diff != "" {
		t.Errorf("2.0 vs 2.1 (-2.0 +2.1):\n%s", diff)
	}
}

func tokenBody(extra string) []byte {
	return []byte(`{"access_token":"abc.def-ghi_jkl~mno+pqr/stu=","token_type":"Bearer","expires_in":3600,"scope":"launch patient/*.rs"` + extra + `}`)
}

// Hostile and quirky responses.
func TestParseTokenResponseTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  []byte
		field string // TokenResponseError.Field expected; "" with check == nil means success
		check func(*testing.T, *Token)
	}{
		// TOK-13
		{"CRLF in access_token", []byte(`{"access_token":"abc\r\nX-Evil: 1","token_type":"bearer","scope":""}`), "access_token", nil},
		{"space in access_token", []byte(`{"access_token":"abc def","token_type":"bearer","scope":""}`), "access_token", nil},
		{"NUL in access_token", []byte(`{"access_token":"abc\u0000","token_type":"bearer","scope":""}`), "access_token", nil},
		{"CR in refresh_token", tokenBody(`,"refresh_token":"r\r\nX: y"`), "refresh_token", nil},
		{"duplicate access_token", []byte(`{"access_token":"a1","access_token":"a2","token_type":"bearer","scope":""}`), "", nil},
		{"not JSON", []byte(`<html>502 Bad Gateway</html>`), "", nil},
		{"array", []byte(`[{"access_token":"a"}]`), "", nil},
		{"truncated", tokenBody("")[:40], "", nil},
		{"trailing data", append(tokenBody(""), `{"access_token":"x"}`...), "", nil},
		{"empty body", nil, "", nil},
		// TOK-02
		{"missing access_token", []byte(`{"token_type":"bearer","scope":""}`), "access_token", nil},
		{"empty access_token", []byte(`{"access_token":"","token_type":"bearer","scope":""}`), "access_token", nil},
		{"numeric access_token", []byte(`{"access_token":12345,"token_type":"bearer","scope":""}`), "access_token", nil},
		{"token_type mac", []byte(`{"access_token":"a","token_type":"mac","scope":""}`), "token_type", nil},
		{"token_type DPoP", []byte(`{"access_token":"a","token_type":"DPoP","scope":""}`), "token_type", nil},
		{"token_type missing", []byte(`{"access_token":"a","scope":""}`), "token_type", nil},
		{"token_type BEARER", []byte(`{"access_token":"a","token_type":"BEARER","expires_in":60,"scope":""}`), "", func(t *testing.T, tok *Token) {
			if tok.TokenType != "Bearer" {
				t.Errorf("TokenType = %q", tok.TokenType)
			}
		}},
		// TOK-03, TOK-15, TOK-16, CONV-4
		{"expires_in negative", []byte(`{"access_token":"a","token_type":"bearer","expires_in":-5,"scope":""}`), "expires_in", nil},
		{"expires_in string", []byte(`{"access_token":"a","token_type":"bearer","expires_in":"3600","scope":""}`), "", func(t *testing.T, tok *Token) {
			if tok.ExpiresIn != 3600 || !tok.Expiry.Equal(testNow.Add(time.Hour)) || len(tok.Warnings) != 1 {
				t.Errorf("ExpiresIn %d Expiry %v Warnings %q", tok.ExpiresIn, tok.Expiry, tok.Warnings)
			}
		}},
		{"expires_in missing", []byte(`{"access_token":"a","token_type":"bearer","scope":""}`), "", func(t *testing.T, tok *Token) {
			if !tok.Expiry.Equal(testNow.Add(DefaultExpiresIn)) || tok.Expiry.IsZero() || len(tok.Warnings) != 1 {
				t.Errorf("Expiry %v Warnings %q: never cache a token without an expiry", tok.Expiry, tok.Warnings)
			}
		}},
		{"expires_in null", []byte(`{"access_token":"a","token_type":"bearer","expires_in":null,"scope":""}`), "", func(t *testing.T, tok *Token) {
			if !tok.Expiry.Equal(testNow.Add(DefaultExpiresIn)) {
				t.Errorf("Expiry %v", tok.Expiry)
			}
		}},
		{"expires_in a day", []byte(`{"access_token":"a","token_type":"bearer","expires_in":86400,"scope":""}`), "", func(t *testing.T, tok *Token) {
			if !tok.Expiry.Equal(testNow.Add(24 * time.Hour)) {
				t.Errorf("Expiry %v", tok.Expiry)
			}
		}},
		{"expires_in huge", []byte(`{"access_token":"a","token_type":"bearer","expires_in":1e300,"scope":""}`), "", func(t *testing.T, tok *Token) {
			if tok.Expiry.Before(testNow) || tok.Expiry.After(testNow.AddDate(11, 0, 0)) {
				t.Errorf("Expiry %v not capped", tok.Expiry)
			}
		}},
		{"expires_in garbage string", []byte(`{"access_token":"a","token_type":"bearer","expires_in":"soon","scope":""}`), "expires_in", nil},
		{"expires_in bool", []byte(`{"access_token":"a","token_type":"bearer","expires_in":true,"scope":""}`), "expires_in", nil},
		{"expires_in negative string", []byte(`{"access_token":"a","token_type":"bearer","expires_in":"-1","scope":""}`), "expires_in", nil},
		// TOK-04
		{"scope missing", []byte(`{"access_token":"a","token_type":"bearer","expires_in":60}`), "", func(t *testing.T, tok *Token) {
			if !tok.ScopeOmitted || tok.Scope != "" || len(tok.GrantedScopes()) != 0 {
				t.Errorf("ScopeOmitted %v Scope %q", tok.ScopeOmitted, tok.Scope)
			}
		}},
		{"scope null", []byte(`{"access_token":"a","token_type":"bearer","expires_in":60,"scope":null}`), "", func(t *testing.T, tok *Token) {
			if !tok.ScopeOmitted || tok.Scope != "" {
				t.Errorf("ScopeOmitted %v Scope %q: a null scope is an omitted one", tok.ScopeOmitted, tok.Scope)
			}
		}},
		// RFC 6749 §5.1: "error": null is no error member.
		{"error null", tokenBody(`,"error":null`), "", func(t *testing.T, tok *Token) {
			if tok.AccessToken == "" {
				t.Error("no access token")
			}
		}},
		{"scope an array", []byte(`{"access_token":"a","token_type":"bearer","scope":["openid"]}`), "scope", nil},
		// TOK-06
		{"patient path injection", tokenBody(`,"patient":"../Practitioner/1"`), "patient", nil},
		{"patient with a query", tokenBody(`,"patient":"123?_format=xml"`), "patient", nil},
		{"patient with a slash", tokenBody(`,"patient":"123/_history/1"`), "patient", nil},
		{"patient empty", tokenBody(`,"patient":""`), "patient", nil},
		{"patient too long", tokenBody(`,"patient":"` + strings.Repeat("1", 65) + `"`), "patient", nil},
		{"patient a number", tokenBody(`,"patient":123`), "patient", nil},
		{"patient reference to another type", tokenBody(`,"patient":"Group/123"`), "patient", nil},
		{"encounter injection", tokenBody(`,"encounter":"1%2F..%2F2"`), "encounter", nil},
		{"Patient/123 normalised", tokenBody(`,"patient":"Patient/123","encounter":"Encounter/e.1"`), "", func(t *testing.T, tok *Token) {
			if tok.Patient != "123" || tok.Encounter != "e.1" || len(tok.Warnings) != 2 {
				t.Errorf("Patient %q Encounter %q Warnings %q", tok.Patient, tok.Encounter, tok.Warnings)
			}
		}},
		// TOK-09
		{"banner as string false", tokenBody(`,"need_patient_banner":"false"`), "", func(t *testing.T, tok *Token) {
			if tok.NeedPatientBanner || len(tok.Warnings) != 1 {
				t.Errorf("NeedPatientBanner %v Warnings %q", tok.NeedPatientBanner, tok.Warnings)
			}
		}},
		{"banner as string true", tokenBody(`,"need_patient_banner":"true"`), "", func(t *testing.T, tok *Token) {
			if !tok.NeedPatientBanner || len(tok.Warnings) != 1 {
				t.Errorf("NeedPatientBanner %v Warnings %q", tok.NeedPatientBanner, tok.Warnings)
			}
		}},
		{"banner as number", tokenBody(`,"need_patient_banner":1`), "", func(t *testing.T, tok *Token) {
			if tok.NeedPatientBanner || len(tok.Warnings) != 1 {
				t.Errorf("NeedPatientBanner %v Warnings %q", tok.NeedPatientBanner, tok.Warnings)
			}
		}},
		{"style javascript", tokenBody(`,"smart_style_url":"javascript:alert(1)"`), "", func(t *testing.T, tok *Token) {
			if tok.SmartStyleURL != "" || len(tok.Warnings) != 1 {
				t.Errorf("SmartStyleURL %q", tok.SmartStyleURL)
			}
		}},
		{"style plain http", tokenBody(`,"smart_style_url":"http://ehr.example.org/style.json"`), "", func(t *testing.T, tok *Token) {
			if tok.SmartStyleURL != "" {
				t.Errorf("SmartStyleURL %q", tok.SmartStyleURL)
			}
		}},
		{"style loopback http", tokenBody(`,"smart_style_url":"http://127.0.0.1:9090/style.json"`), "", func(t *testing.T, tok *Token) {
			if tok.SmartStyleURL != "http://127.0.0.1:9090/style.json" {
				t.Errorf("SmartStyleURL %q", tok.SmartStyleURL)
			}
		}},
		{"intent not a string", tokenBody(`,"intent":{"x":1}`), "intent", nil},
		{"tenant not a string", tokenBody(`,"tenant":7`), "tenant", nil},
		{"id_token not a string", tokenBody(`,"id_token":{}`), "id_token", nil},
		// TOK-08
		{"fhirContext not an array", tokenBody(`,"fhirContext":"Observation/1"`), "", func(t *testing.T, tok *Token) {
			if len(tok.FHIRContext) != 0 || len(tok.Warnings) != 1 {
				t.Errorf("FHIRContext %v Warnings %q", tok.FHIRContext, tok.Warnings)
			}
		}},
		// TOK-06: a null launch context member is an absent one, not an empty id.
		{"patient and encounter null", tokenBody(`,"patient":null,"encounter":null`), "", func(t *testing.T, tok *Token) {
			if tok.Patient != "" || tok.Encounter != "" {
				t.Errorf("Patient %q Encounter %q", tok.Patient, tok.Encounter)
			}
		}},
		// TOK-08, SEC-12: a fhirContext reference is relative, in either shape.
		{"fhirContext hostile references", tokenBody(`,"fhirContext":["https://evil.example/Patient/1","Observation/1/../../x",` +
			`{"reference":"../Practitioner/1"},{"reference":"https://evil.example/Patient/2","role":"launch"},` +
			`{"reference":"Observation/7/_history/2"},"Observation/8"]`), "", func(t *testing.T, tok *Token) {
			want := []FHIRContextItem{{Reference: "Observation/7/_history/2", Role: "launch"}, {Reference: "Observation/8", Role: "launch"}}
			if diff := cmp.Diff(want, tok.FHIRContext); diff != "" || len(tok.Warnings) != 4 {
				t.Errorf("FHIRContext (-want +got):\n%s\nWarnings %q", diff, tok.Warnings)
			}
		}},
		// TOK-10
		{"extension members", tokenBody(`,"__darkMode":true,"https://ehr.example.org/props/dark-mode":true,"authorization_details":[{"type":"smart_on_fhir"}]`), "", func(t *testing.T, tok *Token) {
			if len(tok.Extensions) != 3 || string(tok.Extensions["__darkMode"]) != "true" {
				t.Errorf("Extensions %q", tok.Extensions)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := ParseTokenResponse(tt.body, testNow)
			if tt.check != nil {
				if err != nil {
					t.Fatalf("ParseTokenResponse: %v", err)
				}
				tt.check(t, tok)
				return
			}
			var te *TokenResponseError
			if !errors.As(err, &te) || !errors.Is(err, ErrMalformedTokenResponse) {
				t.Fatalf("ParseTokenResponse = %v, %v; want a *TokenResponseError", tok, err)
			}
			if tt.field != "" && te.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", te.Field, tt.field, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "smart: ") || strings.ContainsAny(msg, "\r\n\x00") {
				t.Errorf("message %q", msg)
			}
			for _, secret := range []string{"abc.def", "a1", "a2", "r\r"} {
				if strings.Contains(msg, secret) {
					t.Errorf("message %q quotes a credential", msg)
				}
			}
		})
	}
}

// A 200 response with an error member is an OAuth error, not a token (TOK-12).
func TestParseTokenResponseErrorMember(t *testing.T) {
	t.Parallel()
	for body, code := range map[string]string{
		`{"error":"invalid_grant","error_description":"code used","error_uri":"https://ehr.example.org/e"}`: "invalid_grant",
		`{"access_token":"a","token_type":"bearer","error":"invalid_scope"}`:                                "invalid_scope",
		`{"error":""}`:              "server_error",
		`{"error":{"code":7}}`:      `{"code":7}`,
		`{"error":"bad\u001b[31m"}`: "bad?[31m",
	} {
		_, err := ParseTokenResponse([]byte(body), testNow)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != code {
			t.Errorf("%s: %v, want a RetrieveError with code %q", body, err, code)
			continue
		}
		_ = err.Error() // must not panic without a Response
	}
}

// Lossless persistence: a token survives JSON with nothing lost.
func TestTokenJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"ehr-launch.json", "standalone.json", "fhircontext-2.1.json", "fhircontext-bad-items.json", "extensions.json", "quirks-bcda-string-expiry.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			tok, err := ParseTokenResponse(loadTestdata(t, "token", file), testNow)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(tok)
			if err != nil {
				t.Fatal(err)
			}
			var back Token
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tok, &back, tokenCmp); diff != "" {
				t.Errorf("round trip (-before +after):\n%s", diff)
			}
			for _, k := range []string{"scope", "patient", "id_token"} {
				if tok.Extra(k) != nil && back.Extra(k) != tok.Extra(k) {
					t.Errorf("Extra(%q) = %v, want %v", k, back.Extra(k), tok.Extra(k))
				}
			}
			if !back.Valid() && tok.Valid() {
				t.Error("the loaded token is not Valid")
			}
		})
	}
	omitted, _ := ParseTokenResponse([]byte(`{"access_token":"a","token_type":"bearer"}`), testNow)
	b, _ := json.Marshal(omitted)
	var back Token
	if err := json.Unmarshal(b, &back); err != nil || !back.ScopeOmitted {
		t.Errorf("ScopeOmitted lost: %v %+v", err, back)
	}
	if b, err := json.Marshal(&Token{Scope: "openid"}); err != nil || !strings.Contains(string(b), `"scope":"openid"`) {
		t.Errorf("a Token without *oauth2.Token: %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"access_token":7}`), &back); err == nil {
		t.Error("a malformed stored token must not load")
	}
}

// FromOAuth2 reads the SMART members x/oauth2 keeps in Extra after a real exchange.
func TestFromOAuth2(t *testing.T) {
	t.Parallel()
	body := loadTestdata(t, "token", "fhircontext-2.1.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	cfg := oauth2.Config{ClientID: "app", Endpoint: oauth2.Endpoint{TokenURL: srv.URL, AuthStyle: oauth2.AuthStyleInParams}}
	ot, err := cfg.Exchange(t.Context(), "code")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := FromOAuth2(ot)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ParseTokenResponse(body, testNow)
	want.Expiry = ot.Expiry
	if diff := cmp.Diff(want, tok, tokenCmp); diff != "" {
		t.Errorf("(-ParseTokenResponse +FromOAuth2):\n%s", diff)
	}

	stored := &oauth2.Token{AccessToken: "a", TokenType: "Bearer", Expiry: testNow}
	tok, err = FromOAuth2(stored)
	if err != nil || tok.AccessToken != "a" || !tok.Expiry.Equal(testNow) || tok.Patient != "" {
		t.Errorf("FromOAuth2(stored) = %+v, %v", tok, err)
	}
	if _, err := FromOAuth2(nil); !errors.Is(err, ErrMalformedTokenResponse) {
		t.Errorf("FromOAuth2(nil) = %v", err)
	}
	bad := (&oauth2.Token{AccessToken: "a", TokenType: "Bearer"}).WithExtra(map[string]any{"patient": "../x"})
	if _, err := FromOAuth2(bad); !errors.Is(err, ErrMalformedTokenResponse) {
		t.Errorf("FromOAuth2 with a hostile patient = %v", err)
	}
}

func TestIsFHIRIDAndValidAccessToken(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"123": true, "a-b.C": true, strings.Repeat("x", 64): true, strings.Repeat("x", 65): false, "": false, "a/b": false, "a b": false, "ä": false} {
		if IsFHIRID(s) != want {
			t.Errorf("IsFHIRID(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"abc": true, "a.b-c_d~e+f/g==": true, "a=b": false, "=": false, "": false, "a\r\n": false, "a b": false, strings.Repeat("a", 64<<10+1): false} {
		if ValidAccessToken(s) != want {
			t.Errorf("ValidAccessToken(%.20q) != %v", s, want)
		}
	}
}

func BenchmarkParseTokenResponse(b *testing.B) {
	body := loadTestdata(b, "token", "ehr-launch.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTokenResponse(body, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
