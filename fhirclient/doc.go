// Package fhirclient is a FHIR R4 REST client for SMART on FHIR apps and backend services.
//
// It follows the shape of go-github: a Client with a BaseURL, NewRequest and Do, and one method per
// FHIR interaction, each taking a context.Context. Authentication is not its business: pass an
// *http.Client that adds the bearer token, from smart.NewTransport, backend.Config.Client or
// oauth2.Config.Client, and fhirclient never sees the token.
//
//	hc := backendCfg.Client(ctx)                  // adds Authorization: Bearer …
//	c, err := fhirclient.NewClient("https://ehr.example.org/fhir/r4", hc)
//	var p fhir.Patient
//	_, err = c.Read(ctx, "Patient", "123", &p)
//	for e, err := range c.SearchIter(ctx, "Observation", url.Values{"patient": {"123"}}) { … }
//
// # Interactions
//
// Capabilities, Read, VRead, Create, ConditionalCreate, Update (If-Match), Delete, Patch (JSON Patch),
// History, Search (GET), SearchPost (POST _search), Batch, Transaction, Operation ($name, GET or POST
// Parameters) and Everything (Patient/$everything). NewRequest and Do cover anything else.
//
// # Typed and raw
//
// Results decode into the samply models (github.com/samply/golang-fhir-models/fhir-models/fhir).
// Those types drop contained resources, primitive extensions (_birthDate) and unknown elements, and
// refuse unknown codes in required bindings. Every call that takes a destination v also accepts a
// *json.RawMessage, which receives the bytes exactly as sent, and ReadRaw and SearchRaw return them:
// use the raw form for anything you write back or pass on. Bundle entries keep their resources raw
// (fhir.BundleEntry.Resource); DecodeResource decodes one into the right model by its resourceType
// (it links all 146 model types, about 1.7 MB of binary; the rest of the package links only what a
// program uses).
//
// # Vendor profiles
//
// SetProfile applies a smart.Profile (CONV-5): its headers (Epic-Client-ID) and Accept type on every
// request, a fast ErrUnsupportedOperation for operations the server lacks (Epic's $everything), and
// the X-RateLimit-* headers as the wait of a 429 or 503 without Retry-After (the VA).
//
// # Paging
//
// Search returns one page; SearchIter yields the entries of every page and Pages the pages, following
// link[relation=next]. A next link on another origin is refused before any request (the token would
// leak: SMART App Launch, "Access FHIR API"), a repeating next link ends the search, and at most
// 10,000 pages are followed.
//
// # Errors and retries
//
// A non-2xx answer is an *Error carrying the OperationOutcome (all issues kept) or a snippet of a
// non-FHIR body; errors.Is matches ErrNotFound, ErrGone, ErrConflict, ErrPreconditionFailed,
// ErrUnauthorized, ErrForbidden and ErrTooManyRequests by status. 429 and 503 are retried as
// Retry-After says (at most 3 tries; a wait over 120 s returns a *RetryAfterError instead), 500, 502
// and 504 on idempotent requests once, network errors on idempotent requests with backoff. A 401 is
// not retried here: the auth transport refreshes the token and retries once.
//
// # Security
//
// Only BaseURL's origin (and TrustedOrigins) is contacted: redirects, next links and absolute request
// URLs elsewhere are refused with an *OriginError. Paths are built from validated resource types and
// ids, never from raw server text (API-05). Plain http is refused except on loopback unless
// InsecureAllowHTTP is set. Bodies are capped (64 MiB, error bodies 1 MiB), and error messages never
// quote a query string or anything shaped like a token.
//
// Specifications:
//   - FHIR R4 RESTful API: https://hl7.org/fhir/R4/http.html
//   - FHIR R4 search and paging: https://hl7.org/fhir/R4/search.html
//   - FHIR R4 operations: https://hl7.org/fhir/R4/operations.html
//   - SMART App Launch, access the FHIR API: https://hl7.org/fhir/smart-app-launch/app-launch.html#access-fhir-api
//   - SMART Backend Services: https://hl7.org/fhir/smart-app-launch/backend-services.html
package fhirclient
