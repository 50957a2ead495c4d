package fhirclient

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Search runs a search (GET [base]/Type?q, FHIR R4 search.html) and returns the first page.
// resourceType "" searches the whole system. The page's next link is in Response.NextLink and
// NextLink(bundle); SearchIter follows it. Entry resources stay raw JSON (fhir.BundleEntry.Resource),
// so nothing in them is lost until you decode them.
//
// A server filters results it will not show under the token's scopes and answers 200 (API-03):
// a short page is not an error.
func (c *Client) Search(ctx context.Context, resourceType string, q url.Values) (*fhir.Bundle, *Response, error) {
	p, err := searchPath(resourceType, "", q)
	if err != nil {
		return nil, nil, err
	}
	return c.bundle(ctx, call{method: http.MethodGet, path: p})
}

// SearchRaw runs a search like Search and returns the page's bytes exactly as sent.
func (c *Client) SearchRaw(ctx context.Context, resourceType string, q url.Values) (json.RawMessage, *Response, error) {
	p, err := searchPath(resourceType, "", q)
	if err != nil {
		return nil, nil, err
	}
	var raw json.RawMessage
	resp, err := c.send(ctx, call{method: http.MethodGet, path: p, want: "Bundle", needBody: true}, &raw)
	if err != nil {
		return nil, resp, err
	}
	var links struct {
		Link []fhir.BundleLink `json:"link"`
	}
	if err := unmarshal(raw, &links); err != nil {
		return nil, resp, malformed(raw, err)
	}
	resp.NextLink = NextLink(&fhir.Bundle{Link: links.Link})
	return raw, resp, nil
}

// SearchPost runs a search as POST [base]/Type/_search with q as a form body, for queries too long
// or too sensitive for a URL.
func (c *Client) SearchPost(ctx context.Context, resourceType string, q url.Values) (*fhir.Bundle, *Response, error) {
	p, err := levelPath(resourceType, "", "_search")
	if err != nil {
		return nil, nil, err
	}
	if q == nil {
		q = url.Values{}
	}
	return c.bundle(ctx, call{method: http.MethodPost, path: p, body: q})
}

// SearchIter runs a search and yields every entry of every page, following link[relation=next]
// (CONV-2):
//
//   - a relative next link is resolved against BaseURL;
//   - a next link on another origin (not BaseURL's, not trusted) is not requested at all: the
//     iterator yields an *OriginError naming that origin, since the token would go with it (API-02);
//   - a next link already fetched yields ErrNextLinkRepeats, and more than Client.MaxPages pages
//     (10,000) yields ErrTooManyPages.
//
// Entries of every search mode (match, include, outcome) are yielded; check Search.Mode to tell them
// apart. The iterator stops when the loop body breaks; after yielding an error it ends. q is copied.
func (c *Client) SearchIter(ctx context.Context, resourceType string, q url.Values) iter.Seq2[fhir.BundleEntry, error] {
	q = cloneValues(q)
	return func(yield func(fhir.BundleEntry, error) bool) {
		first, resp, err := c.Search(ctx, resourceType, q)
		if err != nil {
			yield(fhir.BundleEntry{}, err)
			return
		}
		for page, err := range c.pages(ctx, first, resp.Request.URL.String()) {
			if err != nil {
				yield(fhir.BundleEntry{}, err)
				return
			}
			for _, e := range page.Entry {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}

// Pages yields first and then each following page of a searchset or history Bundle (from Search,
// History, Everything or an Operation), with the rules of SearchIter.
func (c *Client) Pages(ctx context.Context, first *fhir.Bundle) iter.Seq2[*fhir.Bundle, error] {
	return c.pages(ctx, first, "")
}

func (c *Client) pages(ctx context.Context, first *fhir.Bundle, firstURL string) iter.Seq2[*fhir.Bundle, error] {
	return func(yield func(*fhir.Bundle, error) bool) {
		// The first page's own URL counts as seen: the request URL when known, and its self link
		// (all Pages has), so a next link back to page 1 is caught before it is fetched again.
		seen := map[string]bool{}
		if firstURL != "" {
			seen[firstURL] = true
		}
		if self := link(first, "self"); self != "" {
			if u, err := c.nextURL(self); err == nil {
				seen[u.String()] = true
			}
		}
		page := first
		for n := 1; ; n++ {
			if !yield(page, nil) {
				return
			}
			next := NextLink(page)
			if next == "" {
				return
			}
			if n >= c.maxPages() {
				yield(nil, fmt.Errorf("%w: still a next link after %d pages", ErrTooManyPages, n))
				return
			}
			u, err := c.nextURL(next)
			if err != nil {
				yield(nil, err)
				return
			}
			key := u.String()
			if seen[key] {
				yield(nil, fmt.Errorf("%w: %s (page %d)", ErrNextLinkRepeats, stripQuery(u), n+1))
				return
			}
			seen[key] = true
			if page, _, err = c.bundle(ctx, call{method: http.MethodGet, path: key}); err != nil {
				yield(nil, err)
				return
			}
		}
	}
}

// nextURL resolves a next link against BaseURL and applies the origin rule before any request.
func (c *Client) nextURL(link string) (*url.URL, error) {
	ref, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("%w: next link is not a URL: %w", ErrMalformedResponse, err)
	}
	u := c.BaseURL.ResolveReference(ref)
	u.Fragment, u.RawFragment = "", ""
	if err := c.checkTarget(u, "next link"); err != nil {
		return nil, err
	}
	return u, nil
}

// NextLink returns the URL of b's link with relation "next", or "" (FHIR R4 http.html#paging).
func NextLink(b *fhir.Bundle) string { return link(b, "next") }

// link returns the URL of b's link with relation rel, or "".
func link(b *fhir.Bundle, rel string) string {
	if b == nil {
		return ""
	}
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.Url
		}
	}
	return ""
}

// bundle runs a call whose answer is a Bundle and records its next link.
func (c *Client) bundle(ctx context.Context, k call) (*fhir.Bundle, *Response, error) {
	k.want, k.needBody = "Bundle", true
	b := new(fhir.Bundle)
	resp, err := c.send(ctx, k, b)
	if err != nil {
		return nil, resp, err
	}
	resp.NextLink = NextLink(b)
	return b, resp, nil
}

// searchPath builds "Type?q", "Type/id/suffix?q", or "?q" for a system-level search.
func searchPath(resourceType, suffix string, q url.Values) (string, error) {
	p, err := levelPath(resourceType, "", suffix)
	if err != nil {
		return "", err
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p, nil
}

// cloneValues deep-copies q.
func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, vs := range maps.All(q) {
		out[k] = slices.Clone(vs)
	}
	return out
}
