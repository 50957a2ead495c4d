package smart

import (
	"encoding/json"
	"time"

	"golang.org/x/oauth2"
)

// tokenJSON is the persisted form of a Token. x/oauth2 loses Extra when a *oauth2.Token is marshalled
// (its raw map is unexported); this form keeps every SMART member.
type tokenJSON struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	ExpiresIn    int64     `json:"expires_in,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	ScopeOmitted bool      `json:"scope_omitted,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	LaunchContext
	Warnings []string `json:"warnings,omitempty"`
}

// MarshalJSON encodes every field, including the launch context and unknown members, so that a stored
// token loads back equal. The output contains credentials: store it encrypted.
func (t *Token) MarshalJSON() ([]byte, error) {
	j := tokenJSON{Scope: t.Scope, ScopeOmitted: t.ScopeOmitted, IDToken: t.IDToken, LaunchContext: t.LaunchContext, Warnings: t.Warnings}
	if t.Token != nil {
		j.AccessToken, j.TokenType, j.RefreshToken = t.AccessToken, t.TokenType, t.RefreshToken
		j.Expiry, j.ExpiresIn = t.Expiry, t.ExpiresIn
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (t *Token) UnmarshalJSON(b []byte) error {
	var j tokenJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ot := &oauth2.Token{AccessToken: j.AccessToken, TokenType: j.TokenType, RefreshToken: j.RefreshToken, Expiry: j.Expiry, ExpiresIn: j.ExpiresIn}
	extra := map[string]any{"scope": j.Scope}
	if j.IDToken != "" {
		extra["id_token"] = j.IDToken
	}
	if j.Patient != "" {
		extra["patient"] = j.Patient
	}
	if j.Encounter != "" {
		extra["encounter"] = j.Encounter
	}
	*t = Token{Token: ot.WithExtra(extra), Scope: j.Scope, ScopeOmitted: j.ScopeOmitted, IDToken: j.IDToken, LaunchContext: j.LaunchContext, Warnings: j.Warnings}
	return nil
}

// FromOAuth2 builds a Token from an *oauth2.Token fresh from an exchange (one whose Extra still holds
// the raw response members), re-validating them like ParseTokenResponse. A token without the raw
// members (loaded from storage by x/oauth2) yields a Token with only the OAuth fields.
func FromOAuth2(ot *oauth2.Token) (*Token, error) {
	if ot == nil {
		return nil, &TokenResponseError{Reason: "nil token"}
	}
	m := map[string]any{"access_token": ot.AccessToken, "token_type": ot.TokenType}
	if ot.RefreshToken != "" {
		m["refresh_token"] = ot.RefreshToken
	}
	for _, k := range []string{"scope", "id_token", "patient", "encounter", "fhirContext", "need_patient_banner", "smart_style_url", "intent", "tenant"} {
		if v := ot.Extra(k); v != nil {
			m[k] = v
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, &TokenResponseError{Reason: err.Error()}
	}
	t, err := ParseTokenResponse(body, time.Now())
	if err != nil {
		return nil, err
	}
	t.Expiry, t.ExpiresIn = ot.Expiry, ot.ExpiresIn
	t.Warnings = nil
	return t, nil
}
