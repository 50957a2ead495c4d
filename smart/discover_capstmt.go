package smart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// The SMART v1 extensions of CapabilityStatement.rest.security
// (https://hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html#declaring-support-for-oauth2-endpoints).
const (
	oauthURIsExtension    = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
	capabilitiesExtension = "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities"
)

type fhirExtension struct {
	URL       string          `json:"url"`
	ValueURI  string          `json:"valueUri"`
	ValueURL  string          `json:"valueUrl"`
	ValueCode string          `json:"valueCode"`
	Extension []fhirExtension `json:"extension"`
}

// capabilityStatement holds the few members the fallback reads; the decoder skips the rest.
type capabilityStatement struct {
	ResourceType string `json:"resourceType"`
	Rest         []struct {
		Security struct {
			Extension []fhirExtension `json:"extension"`
		} `json:"security"`
	} `json:"rest"`
}

// fetchCapabilityStatement reads the endpoints from GET {base}/metadata (DISC-12): the oauth-uris
// extension (authorize, token (required), register, manage, introspect, revoke) and the v1
// capabilities extension. The result is Legacy.
func (d *Discoverer) fetchCapabilityStatement(ctx context.Context, hc *http.Client, base *url.URL) (*Configuration, error) {
	resp, u, err := d.getMetadata(ctx, hc, base)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	cfg, err := parseCapabilityStatement(&limitedReader{r: resp.Body, n: MaxCapabilityStatementBytes}, base, d.InsecureAllowHTTP)
	if err != nil {
		return nil, d.errorf(u, resp.StatusCode, err)
	}
	cfg.DocumentURL = u.String()
	return cfg, nil
}

// getMetadata GETs {base}/metadata and returns the 2xx response, body open, once its Content-Type is
// a JSON one; u is the URL fetched.
func (d *Discoverer) getMetadata(ctx context.Context, hc *http.Client, base *url.URL) (resp *http.Response, u *url.URL, err error) {
	u = wellKnownURL(base, "metadata")
	resp, err = d.get(ctx, hc, u, "application/fhir+json, application/json+fhir;q=0.9, application/json;q=0.8")
	if err != nil {
		return nil, u, err
	}
	if err := checkJSONMediaType(resp.Header.Get("Content-Type"), []byte("{")); err != nil {
		resp.Body.Close()
		return nil, u, d.errorf(u, resp.StatusCode, err)
	}
	return resp, u, nil
}

// parseCapabilityStatement decodes a CapabilityStatement (or DSTU2 Conformance) stream.
func parseCapabilityStatement(r io.Reader, base *url.URL, allowHTTP bool) (*Configuration, error) {
	var cs capabilityStatement
	if err := json.NewDecoder(r).Decode(&cs); err != nil {
		if e, ok := r.(*limitedReader); ok && e.exceeded {
			return nil, fmt.Errorf("%w (limit %d bytes)", ErrBodyTooLarge, e.n)
		}
		return nil, fmt.Errorf("%w: CapabilityStatement: %w", ErrNotJSON, err)
	}
	if cs.ResourceType != "CapabilityStatement" && cs.ResourceType != "Conformance" {
		return nil, fmt.Errorf("%w: resourceType %q is not CapabilityStatement", ErrInvalidDocument, sanitize(cs.ResourceType))
	}
	c := &Configuration{Legacy: true}
	found := false
	for _, rest := range cs.Rest {
		for _, ext := range rest.Security.Extension {
			switch ext.URL {
			case oauthURIsExtension:
				found = true
				for _, sub := range ext.Extension {
					v := sub.ValueURI
					if v == "" {
						v = sub.ValueURL
					}
					switch sub.URL {
					case "authorize":
						c.AuthorizationEndpoint = v
					case "token":
						c.TokenEndpoint = v
					case "register":
						c.RegistrationEndpoint = v
					case "manage":
						c.ManagementEndpoint = v
					case "introspect":
						c.IntrospectionEndpoint = v
					case "revoke":
						c.RevocationEndpoint = v
					}
				}
			case capabilitiesExtension:
				if ext.ValueCode != "" {
					c.Capabilities = append(c.Capabilities, ext.ValueCode)
				}
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: the CapabilityStatement has no oauth-uris extension", ErrMissingTokenEndpoint)
	}
	if c.TokenEndpoint == "" {
		return nil, fmt.Errorf("%w: the oauth-uris extension has no token", ErrMissingTokenEndpoint)
	}
	if err := c.resolveEndpoints(base, allowHTTP); err != nil {
		return nil, err
	}
	return c, nil
}

// limitedReader fails with ErrBodyTooLarge once more than n bytes have been read, for streaming
// decoders (httpx.ReadLimited is for bodies read whole).
type limitedReader struct {
	r        io.Reader
	n        int64
	read     int64
	exceeded bool
}

// Read reads from the underlying reader until more than n bytes have arrived.
func (l *limitedReader) Read(p []byte) (int, error) {
	if l.read > l.n {
		l.exceeded = true
		return 0, httpx.ErrBodyTooLarge
	}
	if room := l.n + 1 - l.read; int64(len(p)) > room {
		p = p[:room]
	}
	k, err := l.r.Read(p)
	l.read += int64(k)
	if l.read > l.n {
		l.exceeded = true
		return k, httpx.ErrBodyTooLarge
	}
	return k, err
}
