package openapi

// Version is the OpenAPI version of the documents this package writes.
const Version = "3.1.1"

// Document is an OpenAPI 3.1 document: the subset of the OpenAPI Object this package writes. It
// encodes with encoding/json; map members come out sorted, so the encoding is deterministic.
type Document struct {
	OpenAPI    string               `json:"openapi"`
	Info       Info                 `json:"info"`
	Servers    []Server             `json:"servers,omitempty"`
	Paths      map[string]*PathItem `json:"paths,omitempty"`
	Components *Components          `json:"components,omitempty"`
	Tags       []Tag                `json:"tags,omitempty"`
}

// Info is the OpenAPI Info Object. Title and Version are required.
type Info struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version"`
}

// Server is the OpenAPI Server Object: the FHIR base URL that paths are relative to.
type Server struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
}

// Tag is the OpenAPI Tag Object; operations are tagged with their resource type.
type Tag struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// PathItem is the OpenAPI Path Item Object (only the methods a FHIR read-only API needs).
type PathItem struct {
	Summary    string       `json:"summary,omitempty"`
	Parameters []*Parameter `json:"parameters,omitempty"`
	Get        *Operation   `json:"get,omitempty"`
	Post       *Operation   `json:"post,omitempty"`
	Delete     *Operation   `json:"delete,omitempty"`
}

// Operations returns the item's operations keyed by lower-case HTTP method.
func (p *PathItem) Operations() map[string]*Operation {
	out := map[string]*Operation{}
	for m, op := range map[string]*Operation{"get": p.Get, "post": p.Post, "delete": p.Delete} {
		if op != nil {
			out[m] = op
		}
	}
	return out
}

// Operation is the OpenAPI Operation Object. A nil Security means "no authorization needed" only
// when the document has no top-level security, which is how this package writes documents.
type Operation struct {
	OperationID string                `json:"operationId"`
	Summary     string                `json:"summary,omitempty"`
	Description string                `json:"description,omitempty"`
	Tags        []string              `json:"tags,omitempty"`
	Parameters  []*Parameter          `json:"parameters,omitempty"`
	Responses   map[string]*Response  `json:"responses"`
	Security    []SecurityRequirement `json:"security,omitempty"`

	// SMARTAccess is the x-smart-access extension: the resource type and SMART v2 permission
	// letters the operation needs, for tools that reason about scopes rather than list them.
	SMARTAccess *Access `json:"x-smart-access,omitempty"`
}

// Access is the value of the x-smart-access operation extension.
type Access struct {
	ResourceType string   `json:"resourceType"` // a FHIR type or "*"
	Permission   string   `json:"permission"`   // SMART v2 letters, e.g. "r" or "s"
	Contexts     []string `json:"contexts"`     // patient, user, system: the contexts the requirements offer
}

// Parameter is the OpenAPI Parameter Object.
type Parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"` // path, query, header
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Schema      *Schema `json:"schema,omitempty"`
}

// Response is the OpenAPI Response Object.
type Response struct {
	Description string                `json:"description"`
	Content     map[string]*MediaType `json:"content,omitempty"`
	Headers     map[string]*Header    `json:"headers,omitempty"`
}

// Header is the OpenAPI Header Object.
type Header struct {
	Description string  `json:"description,omitempty"`
	Schema      *Schema `json:"schema,omitempty"`
}

// MediaType is the OpenAPI Media Type Object.
type MediaType struct {
	Schema *Schema `json:"schema,omitempty"`
}

// Schema is the subset of a JSON Schema 2020-12 (OpenAPI 3.1 Schema Object) this package writes.
type Schema struct {
	Ref         string             `json:"$ref,omitempty"`
	Type        string             `json:"type,omitempty"`
	Format      string             `json:"format,omitempty"`
	Description string             `json:"description,omitempty"`
	Pattern     string             `json:"pattern,omitempty"`
	Const       string             `json:"const,omitempty"`
	Required    []string           `json:"required,omitempty"`
	Properties  map[string]*Schema `json:"properties,omitempty"`
	Items       *Schema            `json:"items,omitempty"`
}

// Components is the OpenAPI Components Object.
type Components struct {
	Schemas         map[string]*Schema         `json:"schemas,omitempty"`
	SecuritySchemes map[string]*SecurityScheme `json:"securitySchemes,omitempty"`
}

// Security scheme types (OpenAPI Security Scheme Object "type").
const (
	TypeOAuth2        = "oauth2"
	TypeOpenIDConnect = "openIdConnect"
)

// SecurityScheme is the OpenAPI Security Scheme Object for the oauth2 and openIdConnect types.
type SecurityScheme struct {
	Type             string      `json:"type"`
	Description      string      `json:"description,omitempty"`
	Flows            *OAuthFlows `json:"flows,omitempty"`            // oauth2
	OpenIDConnectURL string      `json:"openIdConnectUrl,omitempty"` // openIdConnect

	// TokenEndpointAuthMethods is the x-token-endpoint-auth-methods-supported extension, copied from
	// discovery: OpenAPI cannot say how a client authenticates at the token endpoint.
	TokenEndpointAuthMethods []string `json:"x-token-endpoint-auth-methods-supported,omitempty"`
	// TokenEndpointAuthSigningAlgs is the x-token-endpoint-auth-signing-alg-values-supported extension.
	TokenEndpointAuthSigningAlgs []string `json:"x-token-endpoint-auth-signing-alg-values-supported,omitempty"`
	// Capabilities is the x-smart-capabilities extension: the server's SMART capabilities.
	Capabilities []string `json:"x-smart-capabilities,omitempty"`
}

// OAuthFlows is the OpenAPI OAuth Flows Object.
type OAuthFlows struct {
	AuthorizationCode *OAuthFlow `json:"authorizationCode,omitempty"`
	ClientCredentials *OAuthFlow `json:"clientCredentials,omitempty"`
}

// OAuthFlow is the OpenAPI OAuth Flow Object. Scopes is required (it may be empty).
type OAuthFlow struct {
	AuthorizationURL string            `json:"authorizationUrl,omitempty"` // authorizationCode only
	TokenURL         string            `json:"tokenUrl"`
	RefreshURL       string            `json:"refreshUrl,omitempty"`
	Scopes           map[string]string `json:"scopes"`

	// UsePKCE is the x-usePkce extension ("SHA-256": PKCE with S256), understood by API consoles
	// such as Scalar. SMART App Launch requires PKCE S256 on every authorization request.
	UsePKCE string `json:"x-usePkce,omitempty"`
	// CodeChallengeMethods is the x-code-challenge-methods-supported extension, copied from discovery.
	CodeChallengeMethods []string `json:"x-code-challenge-methods-supported,omitempty"`
}

// SecurityRequirement is the OpenAPI Security Requirement Object: scheme name to the scopes that
// are all needed. An operation's list of requirements are alternatives.
type SecurityRequirement map[string][]string
