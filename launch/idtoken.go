package launch

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// maxIDTokenAge bounds how old an id_token's iat may be (IDT-01: "not absurdly old").
const maxIDTokenAge = 24 * time.Hour

// fhirUserTypes are the resource types fhirUser may name (IDT-04).
var fhirUserTypes = []string{"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person"}

// idTokenCheck is what an id_token is checked against.
type idTokenCheck struct {
	issuer   string // discovered issuer (id_token iss must equal it exactly)
	jwksURI  string // from discovery, or "" to use {issuer}/.well-known/openid-configuration
	nonce    string // sent nonce, or ""
	fhirBase string // the FHIR base (aud of the authorize request) for relative fhirUser
}

// identity is the verified content of an id_token.
type identity struct {
	sub, fhirUser string
	legacy        bool
}

type idHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

type idClaims struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      json.RawMessage `json:"aud"`
	Azp      string          `json:"azp"`
	Exp      *json.Number    `json:"exp"`
	Iat      *json.Number    `json:"iat"`
	Nbf      *json.Number    `json:"nbf"`
	Nonce    *string         `json:"nonce"`
	FHIRUser string          `json:"fhirUser"`
	Profile  string          `json:"profile"`
}

// verifyIDToken checks an id_token as OpenID Connect Core §3.1.3.7 and SMART require (IDT-01…08):
// an allowed asymmetric algorithm, a signature by a key of the issuer's JWK Set selected by kid and
// key type (jku, x5u and jwk headers are ignored), iss, aud/azp, exp/iat/nbf with bounded skew,
// nonce, sub and fhirUser.
func (rt *runtime) verifyIDToken(ctx context.Context, norm, raw string, chk idTokenCheck) (*identity, error) {
	if len(raw) > 64<<10 {
		return nil, idtErr("too large")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, idtErr("not a compact JWS")
	}
	var h idHeader
	if err := decodeSegment(parts[0], &h); err != nil {
		return nil, &IDTokenError{Reason: "header", Err: err}
	}
	if !slices.Contains(rt.algs, h.Alg) {
		return nil, idtErr("algorithm %q not accepted (accepted: %s)", quote(h.Alg), strings.Join(rt.algs, ", "))
	}
	if chk.issuer == "" {
		return nil, idtErr("the server's configuration names no issuer to check the id_token against")
	}
	hc := rt.client(norm)
	uri, err := rt.jwksURI(ctx, hc, chk)
	if err != nil {
		return nil, &IDTokenError{Reason: "no JWK Set", Err: err}
	}
	set, err := rt.keySet(ctx, hc, uri)
	if err != nil {
		return nil, &IDTokenError{Reason: "JWK Set", Err: err}
	}
	key, err := selectKey(set, h)
	if errors.Is(err, errNoKey) {
		// The server may have rotated its keys: fetch once more, rate-limited (JWKS-05).
		if fresh, ok, ferr := rt.refetchKeySet(ctx, hc, uri, set); ferr != nil {
			return nil, &IDTokenError{Reason: "JWK Set", Err: ferr}
		} else if ok {
			key, err = selectKey(fresh, h)
		}
	}
	if err != nil {
		return nil, &IDTokenError{Reason: "signing key", Err: err}
	}
	payload, err := jws.Verify([]byte(raw), jws.WithKey(jwa.SignatureAlgorithm(h.Alg), key))
	if err != nil {
		return nil, idtErr("bad signature")
	}
	var c idClaims
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, &IDTokenError{Reason: "claims", Err: err}
	}
	if err := rt.checkClaims(&c, chk); err != nil {
		return nil, err
	}
	id := &identity{sub: c.Sub}
	ref := c.FHIRUser
	if ref == "" && c.Profile != "" {
		ref, id.legacy = c.Profile, true // SMART v1 (IDT-06)
	}
	if ref != "" {
		if id.fhirUser, err = resolveFHIRUser(ref, chk.fhirBase, rt.c.InsecureAllowHTTP); err != nil {
			return nil, err
		}
	}
	return id, nil
}

func (rt *runtime) checkClaims(c *idClaims, chk idTokenCheck) error {
	if c.Iss != chk.issuer {
		return idtErr("iss %q is not the issuer %q", quote(c.Iss), quote(chk.issuer))
	}
	var aud []string
	if len(c.Aud) > 0 && c.Aud[0] == '[' {
		if err := json.Unmarshal(c.Aud, &aud); err != nil {
			return idtErr("aud is not a string or an array of strings")
		}
	} else {
		var one string
		if err := json.Unmarshal(c.Aud, &one); err != nil {
			return idtErr("aud missing or not a string")
		}
		aud = []string{one}
	}
	if !slices.Contains(aud, rt.c.ClientID) {
		return idtErr("aud does not contain this client")
	}
	if len(aud) > 1 && c.Azp == "" {
		return idtErr("several audiences and no azp")
	}
	if c.Azp != "" && c.Azp != rt.c.ClientID {
		return idtErr("azp is another client")
	}
	now := rt.now()
	exp, err := numericDate(c.Exp)
	if err != nil {
		return idtErr("exp: %v", err)
	}
	if !now.Before(exp.Add(rt.skew)) {
		return idtErr("expired")
	}
	iat, err := numericDate(c.Iat)
	if err != nil {
		return idtErr("iat: %v", err)
	}
	if iat.After(now.Add(rt.skew)) {
		return idtErr("issued in the future")
	}
	if now.Sub(iat) > maxIDTokenAge {
		return idtErr("issued too long ago")
	}
	if c.Nbf != nil {
		nbf, err := numericDate(c.Nbf)
		if err != nil {
			return idtErr("nbf: %v", err)
		}
		if nbf.After(now.Add(rt.skew)) {
			return idtErr("not yet valid")
		}
	}
	if chk.nonce != "" && (c.Nonce == nil || *c.Nonce != chk.nonce) {
		return idtErr("nonce missing or wrong")
	}
	if c.Sub == "" {
		return idtErr("no sub")
	}
	return nil
}

// resolveFHIRUser resolves fhirUser (absolute, or relative to the FHIR base) and checks its type
// (IDT-03, IDT-04). The result is an absolute URL; it is never fetched with the token unless it
// lies under the FHIR base (IDT-05, see Session.FHIRUserReference). An absolute one follows the
// URL policy of the FHIR base (CONV-1: plain http only on loopback, or with allowHTTP).
func resolveFHIRUser(ref, fhirBase string, allowHTTP bool) (string, error) {
	if len(ref) > 2048 || strings.ContainsAny(ref, " \r\n\t") {
		return "", idtErr("fhirUser is not a reference")
	}
	base, err := fhirBaseURL(fhirBase)
	if err != nil {
		return "", idtErr("FHIR base: %v", err)
	}
	u, err := url.Parse(ref)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", idtErr("fhirUser is not a reference")
	}
	if u.IsAbs() {
		if err := httpx.CheckURL(u, allowHTTP); err != nil {
			return "", idtErr("fhirUser: %v", err)
		}
	} else {
		if strings.HasPrefix(ref, "/") || strings.Contains(ref, "..") {
			return "", idtErr("fhirUser is not a relative reference")
		}
		u = base.ResolveReference(u)
	}
	segs := strings.Split(strings.TrimRight(u.EscapedPath(), "/"), "/")
	if len(segs) < 2 {
		return "", idtErr("fhirUser is not Type/id")
	}
	typ, id := segs[len(segs)-2], segs[len(segs)-1]
	if !slices.Contains(fhirUserTypes, typ) {
		return "", idtErr("fhirUser type %q not allowed (Patient, Practitioner, PractitionerRole, RelatedPerson, Person)", quote(typ))
	}
	if !smart.IsFHIRID(id) {
		return "", idtErr("fhirUser id is not a FHIR id")
	}
	return u.String(), nil
}

// errNoKey means no key of the set matches the token's kid and algorithm.
var errNoKey = errors.New("no key in the JWK Set matches kid and algorithm")

// selectKey picks the one key of set whose kid equals the header's (or, without kid, the only key
// of the right type) and whose type suits the algorithm; zero or several matches fail (JWKS-05).
func selectKey(set jwk.Set, h idHeader) (jwk.Key, error) {
	var found []jwk.Key
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if h.Kid != "" && k.KeyID() != h.Kid {
			continue
		}
		if !keySuits(k, h.Alg) {
			continue
		}
		found = append(found, k)
	}
	switch len(found) {
	case 0:
		return nil, errNoKey
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%d keys match kid %q", len(found), quote(h.Kid))
	}
}

// keySuits reports whether k may verify alg: RSA for RS*/PS*, EC on the matching curve for ES*,
// use "sig" (if set) and alg (if set) equal.
func keySuits(k jwk.Key, alg string) bool {
	if u := k.KeyUsage(); u != "" && u != "sig" {
		return false
	}
	if a := k.Algorithm().String(); a != "" && a != alg {
		return false
	}
	switch alg[:2] {
	case "RS", "PS":
		return k.KeyType() == jwa.RSA
	case "ES":
		ek, ok := k.(jwk.ECDSAPublicKey)
		if !ok {
			if pk, isPriv := k.(jwk.ECDSAPrivateKey); isPriv {
				return curveFor(alg) == pk.Crv()
			}
			return false
		}
		return curveFor(alg) == ek.Crv()
	}
	return false
}

func curveFor(alg string) jwa.EllipticCurveAlgorithm {
	switch alg {
	case "ES256":
		return jwa.P256
	case "ES384":
		return jwa.P384
	default:
		return jwa.P521
	}
}

// jwksURI returns the JWK Set URL: discovery's jwks_uri, else the jwks_uri of
// {issuer}/.well-known/openid-configuration (IDT-01; OpenID Connect Discovery 1.0 §4), whose issuer
// must equal the discovered one. The fallback's answer is cached per issuer like a JWK Set.
//
// The jwks_uri may lie on another origin than the issuer or the FHIR base (OpenID Connect Discovery
// allows it, and some providers serve keys from a separate host): it is trusted because it comes
// from the discovery document of an allowed issuer, fetched over TLS, and whoever could change that
// document could change the token endpoint too. It must pass CONV-1 (https, or loopback http; no
// link-local or metadata host), and it is fetched with nothing secret: no token, no client
// authentication, no cookie, no redirect to yet another origin, 1 MiB at most.
func (rt *runtime) jwksURI(ctx context.Context, hc *http.Client, chk idTokenCheck) (string, error) {
	if chk.jwksURI != "" {
		return chk.jwksURI, nil
	}
	now := rt.now()
	rt.jwks.mu.Lock()
	e, ok := rt.jwks.uris[chk.issuer]
	rt.jwks.mu.Unlock()
	if ok && now.Sub(e.fetched) < jwksTTL && now.After(e.fetched.Add(-time.Minute)) {
		return e.uri, nil
	}
	return shared(ctx, &rt.jwks.sf, "openid-configuration "+chk.issuer, flightTimeout, func(ctx context.Context) (string, error) {
		uri, err := rt.openIDJWKSURI(ctx, hc, chk.issuer)
		if err != nil {
			return "", err
		}
		rt.jwks.mu.Lock()
		defer rt.jwks.mu.Unlock()
		if rt.jwks.uris == nil {
			rt.jwks.uris = map[string]jwksURIEntry{}
		}
		rt.jwks.uris[chk.issuer] = jwksURIEntry{uri: uri, fetched: rt.now()}
		return uri, nil
	})
}

// openIDJWKSURI reads the jwks_uri of issuer's OpenID Provider configuration.
func (rt *runtime) openIDJWKSURI(ctx context.Context, hc *http.Client, issuer string) (string, error) {
	u, err := httpx.ParseAbsURL(strings.TrimRight(issuer, "/")+"/.well-known/openid-configuration", rt.c.InsecureAllowHTTP)
	if err != nil {
		return "", fmt.Errorf("launch: openid-configuration: %w", err)
	}
	body, err := getJSON(ctx, hc, u.String())
	if err != nil {
		return "", err
	}
	var oc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &oc); err != nil {
		return "", fmt.Errorf("launch: openid-configuration: %w", err)
	}
	if oc.Issuer != issuer {
		return "", fmt.Errorf("launch: openid-configuration names issuer %q, not %q", quote(oc.Issuer), quote(issuer))
	}
	if oc.JWKSURI == "" {
		return "", errors.New("launch: openid-configuration names no jwks_uri")
	}
	if _, err := httpx.ParseAbsURL(oc.JWKSURI, rt.c.InsecureAllowHTTP); err != nil {
		return "", fmt.Errorf("launch: openid-configuration jwks_uri: %w", err)
	}
	return oc.JWKSURI, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// numericDate converts a required JWT NumericDate.
func numericDate(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, errors.New("missing")
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, errors.New("not a NumericDate")
	}
	return time.Unix(int64(f), 0), nil
}
