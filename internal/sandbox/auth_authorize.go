package sandbox

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// challengeRE is an S256 code_challenge: 32 bytes of SHA-256 in unpadded base64url (RFC 7636 §4.2).
var challengeRE = regexp.MustCompile(`^[A-Za-z0-9\-_]{43}$`)

// authRequest is a validated authorization request waiting for the user (or the automatic choice).
type authRequest struct {
	clientID    string
	redirectURI string
	state       string
	nonce       string
	challenge   string
	issuer      string   // the FHIR base, for the RFC 9207 iss parameter
	requested   string   // the scope as requested
	granted     []string // after down-grading
	launch      LaunchContext
	ehrLaunch   bool
	needPatient bool
	post        bool // the request came by POST (authorize-post): answer with 303
}

// authorize is GET and POST /auth/authorize (SBX-03). An unknown client_id or a redirect_uri that is not
// registered byte for byte gets an HTML error page, never a redirect; every later error is redirected
// to the client with state.
//
// Automation: the login/consent page and the patient picker are skipped when the client or the launch
// has skip_login, or when the request carries sandbox_skip_login=1. The patient is then the launch's,
// else sandbox_patient=ID, else the first patient; the user is the launch's, else sandbox_user=Type/id,
// else the patient for a patient-only standalone app, else the first practitioner.
func (a *authState) authorize(w http.ResponseWriter, r *http.Request) {
	q, ok := authorizeParams(r)
	if !ok {
		errorPage(w, http.StatusBadRequest, "malformed authorization request: a parameter is repeated or the body is not a form")
		return
	}
	clientID := q.Get("client_id")
	c, ok := a.clients.get(clientID)
	if !ok || a.s.takeFault("auth_invalid_client_id", clientID) {
		errorPage(w, http.StatusBadRequest, "unknown client_id")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !redirectAllowed(c.RedirectURIs, redirectURI) || a.s.takeFault("auth_invalid_redirect_uri", c.ID) {
		errorPage(w, http.StatusBadRequest, "redirect_uri is not registered for this client (exact match required)")
		return
	}
	req := &authRequest{
		clientID: c.ID, redirectURI: redirectURI, state: q.Get("state"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), issuer: a.s.FHIRBase(r), requested: q.Get("scope"),
		post: r.Method == http.MethodPost,
	}
	if oe := a.checkAuthorize(c, q, req); oe != nil {
		a.redirectError(w, r, req, oe)
		return
	}
	if c.SkipLogin || req.launch.SkipLogin || truthy(q.Get("sandbox_skip_login")) {
		a.autoApprove(w, r, req, q)
		return
	}
	tx := randomToken()
	now := a.s.Now()
	a.pending.put(tx, req, now.Add(pendingLifetime), now)
	a.consentPage(w, c, req, tx)
}

// authorizeParams reads the request: the query for GET, the form body for POST (authorize-post). A
// repeated parameter makes the request malformed (RFC 6749 §3.1).
func authorizeParams(r *http.Request) (url.Values, bool) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		form, oe := readForm(r)
		if oe != nil {
			return nil, false
		}
		q = form
	}
	for _, v := range q {
		if len(v) > 1 {
			return nil, false
		}
	}
	return q, true
}

// checkAuthorize validates everything that is answered by redirect: state, response_type, the client's
// grant types, aud, PKCE, launch and scope. It fills req.
func (a *authState) checkAuthorize(c *clientRecord, q url.Values, req *authRequest) *oauthError {
	if oe := a.asAuthorize(q); oe != nil {
		return oe
	}
	switch {
	case req.state == "":
		return invalidRequest("state is required")
	case q.Get("response_type") != "code":
		return newOAuthError(http.StatusBadRequest, "unsupported_response_type", "response_type must be code")
	case !c.allows(grantCode):
		return unauthorizedClient("client %q is not registered for authorization_code", c.ID)
	case a.audRequired() && q.Get("aud") != req.issuer:
		return invalidRequest("aud must be the FHIR base URL %s exactly", req.issuer)
	}
	method := q.Get("code_challenge_method")
	switch {
	case req.challenge == "" && method != "":
		return invalidRequest("code_challenge_method without code_challenge")
	case req.challenge == "" && !a.v1():
		return invalidRequest("code_challenge is required (PKCE with S256)")
	case req.challenge != "" && method != "S256":
		return invalidRequest("code_challenge_method must be S256 (plain, or no method, is refused)")
	case req.challenge != "" && !challengeRE.MatchString(req.challenge):
		return invalidRequest("code_challenge must be 43 characters of base64url (an S256 hash)")
	}
	requested := strings.Fields(req.requested)
	if launch := q.Get("launch"); launch != "" {
		lc, ok := a.launches.get(launch, a.s.Now())
		switch {
		case !ok:
			return invalidRequest("unknown or expired launch")
		case lc.ClientID != "" && lc.ClientID != c.ID:
			return invalidRequest("the launch was issued for another client")
		case !slices.Contains(requested, "launch"):
			return invalidScope("an EHR launch needs the launch scope")
		}
		req.launch, req.ehrLaunch = lc, true
	}
	if len(requested) == 0 || a.s.takeFault("auth_invalid_scope", c.ID) {
		return invalidScope("no valid scope requested")
	}
	policy := scopePolicy{allowed: c.Scope, contexts: []string{"patient", "user"}, v1Only: a.v1()}
	req.granted = policy.grant(req.requested)
	if !req.ehrLaunch {
		req.granted = slices.DeleteFunc(req.granted, func(s string) bool { return s == "launch" })
	}
	req.needPatient = req.launch.Patient == "" &&
		(slices.Contains(req.granted, "launch/patient") || hasContext(req.granted, "patient"))
	if a.s.takeFault("auth_access_denied", c.ID) {
		return newOAuthError(http.StatusForbidden, "access_denied", "the user denied access (simulated)")
	}
	return nil
}

// autoApprove picks the patient and user without a page (see authorize).
func (a *authState) autoApprove(w http.ResponseWriter, r *http.Request, req *authRequest, q url.Values) {
	patient := req.launch.Patient
	if patient == "" && req.needPatient {
		patient = q.Get("sandbox_patient")
		if patient == "" {
			if ps := a.s.Patients(); len(ps) > 0 {
				patient = ps[0].ID
			}
		}
	}
	user := req.launch.User
	if user == "" {
		user = q.Get("sandbox_user")
	}
	if user == "" {
		user = a.defaultUser(req, patient)
	}
	a.approve(w, r, req, patient, q.Get("sandbox_encounter"), user)
}

// defaultUser is the patient for a standalone app with patient but no user scopes, else the first
// practitioner.
func (a *authState) defaultUser(req *authRequest, patient string) string {
	if patient != "" && !req.ehrLaunch && !hasContext(req.granted, "user") {
		return "Patient/" + patient
	}
	if ps := a.s.Practitioners(); len(ps) > 0 {
		return "Practitioner/" + ps[0].ID
	}
	return ""
}

// decide is POST /auth/decide: the answer of the login/consent page.
func (a *authState) decide(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(r)
	if oe != nil {
		errorPage(w, http.StatusBadRequest, oe.desc)
		return
	}
	req, ok := a.pending.take(form.Get("tx"), a.s.Now())
	if !ok {
		errorPage(w, http.StatusBadRequest, "unknown or expired authorization; start again from the app")
		return
	}
	req.post = true
	if form.Get("decision") != "approve" {
		a.redirectError(w, r, req, newOAuthError(http.StatusForbidden, "access_denied", "the user denied access"))
		return
	}
	patient := req.launch.Patient
	if patient == "" && req.needPatient {
		patient = form.Get("patient")
	}
	user := form.Get("user")
	if user == "" {
		user = req.launch.User
	}
	if user == "" {
		user = a.defaultUser(req, patient)
	}
	a.approve(w, r, req, patient, strings.TrimSpace(form.Get("encounter")), user)
}

// approve issues a code for the request and redirects to the client (SBX-03). Armed faults bend the
// redirect: wrong or missing state, an RFC 9207 iss (right or wrong), code together with an error.
func (a *authState) approve(w http.ResponseWriter, r *http.Request, req *authRequest, patient, encounter, user string) {
	switch {
	case req.needPatient && !fhirIDRE.MatchString(patient):
		a.redirectError(w, r, req, newOAuthError(http.StatusForbidden, "access_denied", "no patient was selected"))
		return
	case user != "" && !fhirUserRE.MatchString(user):
		a.redirectError(w, r, req, invalidRequest("the user must be a Practitioner, PractitionerRole, Patient, RelatedPerson or Person"))
		return
	case encounter != "" && !fhirIDRE.MatchString(encounter):
		a.redirectError(w, r, req, invalidRequest("the encounter must be a FHIR id"))
		return
	}
	lc := req.launch
	lc.Patient, lc.User = patient, user
	if lc.Encounter == "" {
		lc.Encounter = encounter
	}
	if !req.ehrLaunch && patient != "" {
		lc.NeedPatientBanner = true // a standalone app has no EHR banner around it
	}
	z := &authz{clientID: req.clientID, scopes: req.granted, launch: lc, ehrLaunch: req.ehrLaunch, nonce: req.nonce}
	now := a.s.Now()
	if hasScope(req.granted, "online_access") && !hasScope(req.granted, "offline_access") {
		z.sessionEnd = now.Add(onlineSessionLifetime)
	}
	code := a.grants.newCode(z, req.redirectURI, req.challenge, now)

	take := func(name string) bool { return a.s.takeFault(name, req.clientID) }
	p := url.Values{"code": {code}}
	state := req.state
	if take("auth_wrong_state") {
		state = randomToken()
	}
	if !take("auth_missing_state") {
		p.Set("state", state)
	}
	if a.issParameter() || take("auth_iss_right") {
		p.Set("iss", req.issuer)
	}
	if take("auth_iss_wrong") {
		p.Set("iss", foreignOrigin(r)+"/fhir")
	}
	if take("auth_code_and_error") {
		p.Set("error", "access_denied")
	}
	a.redirectTo(w, r, req, p)
}

// redirectError sends an authorization error to the client's redirect URI with state (RFC 6749
// §4.1.2.1) and, when advertised, iss (RFC 9207).
func (a *authState) redirectError(w http.ResponseWriter, r *http.Request, req *authRequest, oe *oauthError) {
	p := url.Values{"error": {oe.code}, "error_description": {oe.desc}}
	if req.state != "" {
		p.Set("state", req.state)
	}
	if a.issParameter() {
		p.Set("iss", req.issuer)
	}
	a.redirectTo(w, r, req, p)
}

// redirectTo redirects to the registered redirect URI with p added to its query.
func (a *authState) redirectTo(w http.ResponseWriter, r *http.Request, req *authRequest, p url.Values) {
	u, err := url.Parse(req.redirectURI)
	if err != nil {
		errorPage(w, http.StatusInternalServerError, "the registered redirect_uri does not parse")
		return
	}
	q := u.Query()
	for k, v := range p {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Referrer-Policy", "no-referrer")
	status := http.StatusFound
	if req.post {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, u.String(), status)
}

// issParameter reports whether authorization responses carry RFC 9207 iss (advertised in 2.2 mode).
func (a *authState) issParameter() bool { return a.s.opts.Version == "2.2" }

func truthy(s string) bool {
	b, err := strconv.ParseBool(s)
	return err == nil && b
}
