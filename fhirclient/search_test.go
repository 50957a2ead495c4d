package fhirclient

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// page renders a searchset page with ids and an optional next link.
func page(next string, ids ...string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"x"}`)
	if next != "" {
		fmt.Fprintf(&b, `,{"relation":"next","url":%q}`, next)
	}
	b.WriteString(`],"entry":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"fullUrl":"Patient/%s","resource":{"resourceType":"Patient","id":%q},"search":{"mode":"match"}}`, id, id)
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestSearch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query(); got.Get("name") != "Shaw" || got.Get("birthdate") != "ge1980-01-01" || len(got["_include"]) != 2 {
			t.Errorf("query = %v", got)
		}
		writeJSON(w, 200, page("Patient?page=2", "a", "b"))
	})
	q := url.Values{"name": {"Shaw"}, "birthdate": {"ge1980-01-01"}, "_include": {"Patient:organization", "Patient:general-practitioner"}}
	b, resp, err := e.c.Search(t.Context(), "Patient", q)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entry) != 2 || resp.NextLink != "Patient?page=2" || NextLink(b) != "Patient?page=2" {
		t.Errorf("entries %d, next %q", len(b.Entry), resp.NextLink)
	}
	raw, resp, err := e.c.SearchRaw(t.Context(), "Patient", q)
	if err != nil || string(raw) != page("Patient?page=2", "a", "b") || resp.NextLink != "Patient?page=2" {
		t.Errorf("SearchRaw: %v, next %q", err, resp.NextLink)
	}
}

// API-03: a filtered (short or empty) page is a success.
func TestSearchEmptyPage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Observation", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, page("")) })
	n := 0
	for _, err := range e.c.SearchIter(t.Context(), "Observation", nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 0 {
		t.Errorf("entries = %d", n)
	}
}

func TestSearchPost(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("POST /Patient/_search", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Content-Type", "application/x-www-form-urlencoded")
		if r.URL.RawQuery != "" {
			t.Errorf("query in the URL: %q", r.URL.RawQuery)
		}
		testBody(t, r, "identifier=ssn%7C123-45-6789")
		writeJSON(w, 200, page("", "a"))
	})
	b, _, err := e.c.SearchPost(t.Context(), "Patient", url.Values{"identifier": {"ssn|123-45-6789"}})
	if err != nil || len(b.Entry) != 1 {
		t.Fatalf("SearchPost: %v", err)
	}
}

// CONV-2: SearchIter follows next links (relative, origin-relative and absolute) over several pages,
// copies the caller's query and stops requesting when the loop breaks.
func TestSearchIterPaging(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var requests atomic.Int64
	e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Query().Get("page") {
		case "":
			writeJSON(w, 200, page("Patient?page=2&_count=2", "p1", "p2")) // relative to the base
		case "2":
			writeJSON(w, 200, page(basePath+"/Patient?page=3", "p3", "p4")) // relative to the origin
		case "3":
			writeJSON(w, 200, page(e.srv.URL+basePath+"/Patient?page=4", "p5")) // absolute
		case "4":
			writeJSON(w, 200, page("", "p6"))
		}
	})
	q := url.Values{"_count": {"2"}}
	var ids []string
	for entry, err := range e.c.SearchIter(t.Context(), "Patient", q) {
		if err != nil {
			t.Fatal(err)
		}
		var p fhir.Patient
		if err := unmarshal(entry.Resource, &p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *p.Id)
	}
	if got := strings.Join(ids, ","); got != "p1,p2,p3,p4,p5,p6" {
		t.Errorf("ids = %s", got)
	}
	if len(q) != 1 || q.Get("_count") != "2" {
		t.Errorf("caller's query changed: %v", q)
	}

	// Breaking after the first entry of page 2 sends no third request.
	requests.Store(0)
	n := 0
	for _, err := range e.c.SearchIter(t.Context(), "Patient", q) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if requests.Load() != 2 {
		t.Errorf("requests after break = %d, want 2", requests.Load())
	}
}

// API-02, BS-09: a next link on another origin is refused before any request, with an error naming
// the origin; neither the request nor the token reaches it.
func TestSearchIterForeignNextLink(t *testing.T) {
	t.Parallel()
	for _, form := range []string{"absolute", "scheme-relative", "localhost alias", "plain http elsewhere"} {
		t.Run(form, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			foreign := newForeignServer(t)
			fu := mustParse(t, foreign.URL)
			next := map[string]string{
				"absolute":             foreign.URL + "/fhir/r4/Patient?page=2",
				"scheme-relative":      "//" + fu.Host + "/fhir/r4/Patient?page=2",
				"localhost alias":      "http://localhost:" + fu.Port() + "/fhir/r4/Patient?page=2",
				"plain http elsewhere": "http://ehr.example.org/fhir/r4/Patient?page=2",
			}[form]
			e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, page(next, "p1"))
			})
			var got []string
			var err error
			for entry, e := range e.c.SearchIter(t.Context(), "Patient", nil) {
				if e != nil {
					err = e
					break
				}
				got = append(got, string(entry.Resource))
			}
			if len(got) != 1 {
				t.Errorf("entries before the error = %d, want 1", len(got))
			}
			if form == "plain http elsewhere" {
				if !errors.Is(err, ErrForeignOrigin) && !strings.Contains(fmt.Sprint(err), "insecure") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var oe *OriginError
			if !errors.As(err, &oe) || !errors.Is(err, ErrForeignOrigin) || oe.What != "next link" {
				t.Fatalf("err = %v, want *OriginError for the next link", err)
			}
			if !strings.Contains(err.Error(), oe.Origin) || !strings.Contains(oe.Origin, fu.Port()) {
				t.Errorf("error should name the origin: %v", err)
			}
			if n := foreign.requests.Load(); n != 0 {
				t.Errorf("foreign origin got %d requests", n)
			}
			if n := foreign.authorized.Load(); n != 0 {
				t.Errorf("foreign origin got %d Authorization headers", n)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

// CONV-1: a trusted origin may serve next links.
func TestSearchIterTrustedOrigin(t *testing.T) {
	t.Parallel()
	e := setup(t)
	foreign := newForeignServer(t)
	e.c.TrustedOrigins = []string{foreign.URL}
	e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, page(foreign.URL+"/page2", "p1"))
	})
	n := 0
	for _, err := range e.c.SearchIter(t.Context(), "Patient", nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 || foreign.requests.Load() != 1 {
		t.Errorf("entries = %d, foreign requests = %d", n, foreign.requests.Load())
	}
}

// CONV-2: a next link seen before ends the search with "next link repeats".
func TestSearchIterRepeatingNextLink(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		nextOf   func(p string) string
		requests int64 // the first page's own URL counts as seen: no page is fetched twice
	}{
		"self loop":      {func(p string) string { return "Patient?page=" + p }, 2},
		"back to page 1": {func(p string) string { return map[string]string{"": "Patient?page=2", "2": "Patient"}[p] }, 2},
		"two-page cycle": {func(p string) string {
			return map[string]string{"": "Patient?page=2", "2": "Patient?page=3", "3": "Patient?page=2"}[p]
		}, 3},
		"absolute repeat": {func(p string) string { return map[string]string{"": "Patient?page=2", "2": "PLACEHOLDER"}[p] }, 2},
	}
	for name, tt := range tests {
		nextOf := tt.nextOf
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			var requests atomic.Int64
			e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				p := r.URL.Query().Get("page")
				next := nextOf(p)
				if next == "PLACEHOLDER" {
					next = e.srv.URL + basePath + "/Patient?page=2"
				}
				writeJSON(w, 200, page(next, "p"+p))
			})
			var err error
			for _, e := range e.c.SearchIter(t.Context(), "Patient", nil) {
				if e != nil {
					err = e
				}
			}
			if !errors.Is(err, ErrNextLinkRepeats) || !strings.Contains(err.Error(), "next link repeats") {
				t.Fatalf("err = %v, want ErrNextLinkRepeats", err)
			}
			if requests.Load() != tt.requests {
				t.Errorf("requests = %d, want %d", requests.Load(), tt.requests)
			}
		})
	}
}

// CONV-2: at most MaxPages pages.
func TestSearchIterMaxPages(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.c.MaxPages = 5
	var requests atomic.Int64
	e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		writeJSON(w, 200, page("Patient?page="+strconv.FormatInt(n+1, 10), "p"))
	})
	entries := 0
	var err error
	for _, e := range e.c.SearchIter(t.Context(), "Patient", nil) {
		if e != nil {
			err = e
			continue
		}
		entries++
	}
	if !errors.Is(err, ErrTooManyPages) || entries != 5 || requests.Load() != 5 {
		t.Errorf("err = %v, entries %d, requests %d", err, entries, requests.Load())
	}
}

// An error page mid-search is yielded once and ends the iteration.
func TestSearchIterErrorMidway(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			writeJSON(w, 410, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"paging state expired"}]}`)
			return
		}
		writeJSON(w, 200, page("Patient?page=2", "p1"))
	})
	var errs []error
	for _, err := range e.c.SearchIter(t.Context(), "Patient", nil) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrGone) || !strings.Contains(errs[0].Error(), "paging state expired") {
		t.Errorf("errors = %v", errs)
	}
}

func TestPagesFromEverything(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/p1/$everything", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			writeJSON(w, 200, page("", "c"))
			return
		}
		writeJSON(w, 200, page("Patient/p1/$everything?page=2", "a", "b"))
	})
	first, _, err := e.c.Everything(t.Context(), "p1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for b, err := range e.c.Pages(t.Context(), first) {
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(b.Entry))
	}
	if fmt.Sprint(sizes) != "[2 1]" {
		t.Errorf("page sizes = %v", sizes)
	}
}

// CONV-2: Pages counts the first page's own URL (its self link) as seen, so a next link back to
// page 1 ends the iteration with ErrNextLinkRepeats before page 1 is fetched again.
func TestPagesNextBackToFirst(t *testing.T) {
	t.Parallel()
	tests := map[string]func(base string) string{
		"relative": func(string) string { return "Patient/p1/$everything" },
		"absolute": func(base string) string { return base + "/Patient/p1/$everything" },
	}
	for name, self := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			var requests atomic.Int64
			e.mux.HandleFunc("GET /Patient/p1/$everything", func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if r.URL.Query().Get("page") == "2" {
					writeJSON(w, 200, page("Patient/p1/$everything", "b"))
					return
				}
				writeJSON(w, 200, strings.Replace(page("Patient/p1/$everything?page=2", "a"), `"url":"x"`, fmt.Sprintf("%q:%q", "url", self(e.srv.URL+basePath)), 1))
			})
			first, _, err := e.c.Everything(t.Context(), "p1", nil)
			if err != nil {
				t.Fatal(err)
			}
			var pages int
			for _, err = range e.c.Pages(t.Context(), first) {
				if err != nil {
					break
				}
				pages++
			}
			if !errors.Is(err, ErrNextLinkRepeats) || pages != 2 || requests.Load() != 2 {
				t.Errorf("err = %v, pages %d, requests %d; want ErrNextLinkRepeats, 2, 2", err, pages, requests.Load())
			}
		})
	}
}
