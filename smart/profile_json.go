package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// ErrUnknownProfileKey: a profile's JSON form has a key no setting has. The error names the key and
// lists the known ones, so a typo never silently drops a setting.
var ErrUnknownProfileKey = errors.New("unknown profile key")

// profileAlias has Profile's fields without its methods, so that profileWire can embed it without
// recursing into Profile.MarshalJSON.
type profileAlias Profile

// profileWire is the JSON form of a Profile. Its duration fields shadow Profile's (a field at depth 0
// wins over the embedded one with the same key), so that durations read and write as "30m0s".
type profileWire struct {
	// Preset names the preset the profile starts from; only read.
	Preset string `json:"preset,omitempty"`
	profileAlias
	MaxRetryAfter     durationText `json:"retry_after_cap"`
	MinPollInterval   durationText `json:"min_poll_interval"`
	AssertionBackdate durationText `json:"assertion_backdate"`
}

// durationText is a time.Duration written as a Go duration string ("30m0s", "20s").
type durationText time.Duration

func (d durationText) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *durationText) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: %s is not a duration string such as \"30m\" or \"20s\"", ErrInvalidProfile, sanitize(string(b)))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%w: %q is not a duration such as \"30m\" or \"20s\"", ErrInvalidProfile, sanitize(s))
	}
	*d = durationText(v)
	return nil
}

// MarshalJSON writes every setting, durations as Go duration strings ("30m0s") and empty lists and
// maps as [] and {}; discovery_fallbacks is null when the profile keeps the Discoverer's default.
func (p Profile) MarshalJSON() ([]byte, error) {
	p.ExtraScopes = nonNil(p.ExtraScopes)
	p.UnsupportedOperations = nonNil(p.UnsupportedOperations)
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	return json.Marshal(profileWire{
		profileAlias:      profileAlias(p),
		MaxRetryAfter:     durationText(p.MaxRetryAfter),
		MinPollInterval:   durationText(p.MinPollInterval),
		AssertionBackdate: durationText(p.AssertionBackdate),
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// UnmarshalJSON reads a profile strictly: an unknown key is an error wrapping ErrUnknownProfileKey
// that names it, whatever decoder the caller uses. A "preset" key makes the profile start from that
// preset (an unknown name wraps ErrUnknownProfile and lists the presets); the other keys then
// override its settings, lists replacing the preset's and "headers" adding to them. It does not
// Validate: ParseProfile does both.
func (p *Profile) UnmarshalJSON(b []byte) error {
	var head struct {
		Preset *string `json:"preset"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("smart: profile: %w", err)
	}
	var base Profile
	if head.Preset != nil {
		var err error
		if base, err = ProfileByName(*head.Preset); err != nil {
			return err
		}
	}
	w := profileWire{
		profileAlias:      profileAlias(base),
		MaxRetryAfter:     durationText(base.MaxRetryAfter),
		MinPollInterval:   durationText(base.MinPollInterval),
		AssertionBackdate: durationText(base.AssertionBackdate),
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return profileDecodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("smart: profile: %w: trailing data after the JSON object", ErrInvalidProfile)
	}
	*p = Profile(w.profileAlias)
	// [] and {} mean the same as absent, except for discovery_fallbacks ([] = none, null = default).
	if len(p.ExtraScopes) == 0 {
		p.ExtraScopes = nil
	}
	if len(p.UnsupportedOperations) == 0 {
		p.UnsupportedOperations = nil
	}
	if len(p.Headers) == 0 {
		p.Headers = nil
	}
	p.MaxRetryAfter = time.Duration(w.MaxRetryAfter)
	p.MinPollInterval = time.Duration(w.MinPollInterval)
	p.AssertionBackdate = time.Duration(w.AssertionBackdate)
	return nil
}

// profileDecodeError says what went wrong in the words of the JSON form.
func profileDecodeError(err error) error {
	if key, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("smart: profile: %w %s (known keys: %s)", ErrUnknownProfileKey, sanitize(key), strings.Join(ProfileKeys(), ", "))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("smart: profile: %w: %s: a JSON %s where a %s belongs", ErrInvalidProfile, te.Field, te.Value, jsonKind(te.Type))
	}
	if errors.Is(err, ErrInvalidProfile) {
		return fmt.Errorf("smart: profile: %w", err)
	}
	return fmt.Errorf("smart: profile: %w: %w", ErrInvalidProfile, err)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64:
		return "number"
	case reflect.Slice:
		return "list"
	case reflect.Map:
		return "object"
	default:
		return "string"
	}
}

// ParseProfile reads the JSON form of a profile (see UnmarshalJSON) and validates it.
func ParseProfile(b []byte) (Profile, error) {
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) { // json.Unmarshal checks the syntax before UnmarshalJSON runs
			return Profile{}, fmt.Errorf("smart: profile: %w: %w", ErrInvalidProfile, err)
		}
		return Profile{}, err
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// ProfileKeys lists, sorted, the keys of a profile's JSON form, "preset" included.
func ProfileKeys() []string {
	var keys []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				keys = append(keys, name)
			}
		}
	}
	walk(reflect.TypeFor[profileWire]())
	slices.Sort(keys)
	return slices.Compact(keys)
}
