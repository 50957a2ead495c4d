package launch

import "fmt"

// fmt prints a struct's unexported pointer fields as addresses, but with a verb that does not suit
// them (%s, %d) it prints what they point to, recursively: for a Session that would be its key, and
// through the runtime the client secret. These Format methods print the same structs with the
// secrets left out, whatever the verb (SEC-08).

// Format prints the Session's exported fields; never its key, its tokens or the client's
// credentials.
func (s Session) Format(f fmt.State, verb rune) {
	type session Session // the same fields, without this method
	s.rt, s.src = nil, nil
	fmt.Fprintf(f, fmt.FormatString(f, verb), session(s))
}

// Format prints the TokenSet without its tokens and browser session id.
func (ts TokenSet) Format(f fmt.State, verb rune) {
	type tokenSet TokenSet
	ts.Token = nil
	ts.Browser = redacted(ts.Browser)
	fmt.Fprintf(f, fmt.FormatString(f, verb), tokenSet(ts))
}

// Format prints the Record without its PKCE verifier, nonce and browser session id.
func (r Record) Format(f fmt.State, verb rune) {
	type record Record
	r.Browser, r.Verifier, r.Nonce = redacted(r.Browser), redacted(r.Verifier), redacted(r.Nonce)
	fmt.Fprintf(f, fmt.FormatString(f, verb), record(r))
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}
