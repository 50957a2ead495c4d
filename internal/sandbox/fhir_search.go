package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// Search paging limits (CONV-7).
const (
	defaultCount = 50
	maxCount     = 1000
)

// searchControl holds the result parameters of a search (everything that is not a filter).
type searchControl struct {
	count     int
	countOnly bool // _summary=count (or _count=0)
	total     bool // _total=accurate|estimate
	from      position
}

// resultParams are handled by the search itself; ignoredParams change nothing in a JSON-only
// server; unsupportedParams are refused (or ignored under Prefer: handling=lenient).
var (
	resultParams      = []string{"_count", "_summary", "_total", "_page"}
	ignoredParams     = []string{"_format", "_pretty"}
	unsupportedParams = []string{"_sort", "_include", "_revinclude", "_elements", "_contained", "_has",
		"_list", "_text", "_content", "_query", "_filter", "_containedType"}
)

// search serves GET /fhir/{type}?… and POST /fhir/{type}/_search (SBX-09, CONV-7).
func (f *fhirState) search(w http.ResponseWriter, r *http.Request, g *Grant) {
	t, acc, ok := f.typeAccess(w, r, g, smart.PermSearch, "searching")
	if !ok {
		return
	}
	params, err := searchValues(r)
	lenient := preferLenient(r)
	var ctl searchControl
	var filters url.Values
	if err == nil {
		ctl, filters, err = splitSearch(params, lenient)
	}
	var q query
	if err == nil {
		q, err = f.data.parseQuery(t, filters, lenient)
	}
	if err != nil {
		writeParamError(w, err)
		return
	}
	f.respond(w, g.ClientID, http.StatusOK, f.searchBundle(r, g, t, params, q, acc, ctl))
}

// searchValues returns the search parameters: the URL query, plus the form body of a POST
// _search (application/x-www-form-urlencoded, at most 1 MiB).
func searchValues(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed query string: %w", err)
	}
	if r.Method != http.MethodPost {
		return q, nil
	}
	if mt := r.Header.Get("Content-Type"); !strings.HasPrefix(mt, "application/x-www-form-urlencoded") {
		return nil, fmt.Errorf("POST _search needs a application/x-www-form-urlencoded body, not %s", quoteText(mt))
	}
	body, err := httpx.ReadLimited(r.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, fmt.Errorf("reading the form: %w", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("malformed form body: %w", err)
	}
	for k, vs := range form {
		q[k] = append(q[k], vs...)
	}
	return q, nil
}

func preferLenient(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		if strings.Contains(strings.ReplaceAll(v, " ", ""), "handling=lenient") {
			return true
		}
	}
	return false
}

// splitSearch separates the result parameters from the filters.
func splitSearch(params url.Values, lenient bool) (searchControl, url.Values, error) {
	ctl := searchControl{count: defaultCount}
	filters := url.Values{}
	for k, vs := range params {
		name, _, _ := strings.Cut(k, ":")
		switch {
		case slices.Contains(ignoredParams, name):
		case slices.Contains(unsupportedParams, name):
			if !lenient {
				return ctl, nil, unsupportedParam(k, "not supported by the sandbox")
			}
		case slices.Contains(resultParams, name):
			if err := ctl.set(name, vs[len(vs)-1]); err != nil {
				return ctl, nil, err
			}
		default:
			filters[k] = vs
		}
	}
	return ctl, filters, nil
}

func (c *searchControl) set(name, v string) error {
	switch name {
	case "_count":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badParam(name, "want a non-negative integer")
		}
		c.count = min(n, maxCount)
		c.countOnly = c.countOnly || n == 0
	case "_summary":
		switch v {
		case "count":
			c.countOnly = true
		case "false":
		default:
			return unsupportedParam(name, "only _summary=count and _summary=false are supported")
		}
	case "_total":
		switch v {
		case "accurate", "estimate":
			c.total = true
		case "none":
		default:
			return badParam(name, "want none, estimate or accurate")
		}
	case "_page":
		p, err := parsePageToken(v)
		if err != nil {
			return badParam(name, "not a page token issued by this server")
		}
		c.from = p
	}
	return nil
}

// Page tokens are opaque to clients: base64url of "<patient>.<n>".
func pageToken(p position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(p.patient) + "." + strconv.Itoa(p.n)))
}

func parsePageToken(s string) (position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return position{}, err
	}
	a, c, ok := strings.Cut(string(b), ".")
	if !ok {
		return position{}, strconv.ErrSyntax
	}
	patient, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(c)
	if err1 != nil || err2 != nil || patient < 0 || n < 0 {
		return position{}, strconv.ErrSyntax
	}
	return position{patient, n}, nil
}

// searchBundle runs the search and encodes the searchset Bundle: one page of entries, a total
// when asked for, and self/next links with absolute URLs (next carries an opaque page token).
func (f *fhirState) searchBundle(r *http.Request, g *Grant, t rtype, params url.Values, q query, acc access,
	ctl searchControl) []byte {
	m := matcher{
		keep:       func(rec *record) bool { return q.matches(rec) && acc.allows(rec) },
		candidates: intersectCandidates(q.candidates(), acc.candidates()),
	}
	total := -1
	if ctl.countOnly || ctl.total {
		total = f.count(t, m)
	}
	base := f.s.FHIRBase(r)
	var entries []byte
	var next *position
	if !ctl.countOnly {
		entries, next = f.page(t, m, ctl, base)
	}
	j := jsonBuf{b: make([]byte, 0, len(entries)+512)}
	j.obj("")
	j.str("resourceType", "Bundle")
	j.str("id", rand.Text())
	j.obj("meta")
	j.instant("lastUpdated", f.s.Now())
	j.end()
	j.str("type", "searchset")
	if total >= 0 {
		j.int("total", total)
	}
	j.arr("link")
	j.link("self", base+"/"+t.String()+"?"+params.Encode())
	if next != nil {
		nextURL := base + "/" + t.String() + "?" + withPage(params, *next)
		if f.s.takeFault("api_next_foreign", g.ClientID) {
			nextURL = f.foreignOrigin(r) + strings.TrimPrefix(nextURL, f.s.Origin(r))
		}
		j.link("next", nextURL)
	}
	j.endArr()
	if len(entries) > 0 {
		j.key("entry")
		j.b = append(j.b, '[')
		j.b = append(j.b, entries...)
		j.endArr()
	}
	j.end()
	return j.b
}

// matcher selects a search's resources: the candidate patients (nil: all) and the predicate.
type matcher struct {
	keep       func(*record) bool
	candidates []int
}

// count counts the matches without encoding JSON.
func (f *fhirState) count(t rtype, m matcher) int {
	n := 0
	f.data.scan(f.data.newGenerator(false), t, position{}, m.candidates, func(_ position, rec *record) bool {
		if m.keep(rec) {
			n++
		}
		return true
	})
	return n
}

// page encodes up to ctl.count matching entries from ctl.from, and returns the position of the
// next match (nil when there is none): the next page starts there, so no page is ever empty.
func (f *fhirState) page(t rtype, m matcher, ctl searchControl, base string) ([]byte, *position) {
	entries := jsonBuf{b: make([]byte, 0, min(ctl.count, 100)*1024)}
	var next *position
	n := 0
	f.data.scan(f.data.newGenerator(true), t, ctl.from, m.candidates, func(pos position, rec *record) bool {
		if !m.keep(rec) {
			return true
		}
		if n == ctl.count {
			next = &pos
			return false
		}
		n++
		entries.obj("")
		entries.str("fullUrl", base+"/"+t.String()+"/"+rec.id)
		entries.key("resource")
		entries.b = append(entries.b, rec.json...)
		entries.obj("search")
		entries.str("mode", "match")
		entries.end()
		entries.end()
		return true
	})
	return entries.b, next
}

func (j *jsonBuf) link(relation, u string) {
	j.obj("")
	j.str("relation", relation)
	j.str("url", u)
	j.end()
}

// withPage encodes params with _page set to the token of p.
func withPage(params url.Values, p position) string {
	q := url.Values{}
	for k, vs := range params {
		if k != "_page" {
			q[k] = vs
		}
	}
	q.Set("_page", pageToken(p))
	return q.Encode()
}

// intersectCandidates combines two candidate lists (nil means all patients).
func intersectCandidates(a, b []int) []int {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	out := []int{}
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
