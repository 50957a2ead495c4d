// Package openapitest checks the structure of OpenAPI 3.1 documents in tests. It is a focused
// validator, not a full one: it checks the members of the objects that describe security and paths
// (the parts SMART on FHIR documents are about) against the OpenAPI 3.1.1 specification
// (https://spec.openapis.org/oas/v3.1.1.html), independently of the Go types that produced them.
package openapitest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Validate decodes doc and returns every structural problem found, each prefixed with a JSON
// Pointer to where it is. An empty result means the document passed:
//   - the OpenAPI Object: openapi 3.1.x, info with title and version, at least one of paths,
//     components or webhooks, no unknown fixed fields;
//   - Path Items and Operations: paths start with "/", every path template variable has a required
//     path parameter and every path parameter a variable, operationIds are unique, responses are
//     keyed by status codes and each has a description;
//   - Parameters: name, in (query, header, path, cookie), exactly one of schema and content;
//   - Security Schemes: a known type; oauth2 with flows whose required URLs are absolute URLs and
//     whose scopes are a map of strings; openIdConnect with an openIdConnectUrl;
//   - Security Requirements (top level and per operation): every name is a defined scheme and every
//     scope of an oauth2 scheme is defined in one of its flows;
//   - local $ref values resolve.
func Validate(doc []byte) []error {
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		return []error{fmt.Errorf("document: not a JSON object: %w", err)}
	}
	v := &validator{root: root, opIDs: map[string]string{}}
	v.document()
	return v.errs
}

type validator struct {
	root  map[string]any
	errs  []error
	opIDs map[string]string // operationId -> location
}

func (v *validator) errf(at, format string, a ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, a...)))
}

var (
	versionRE    = regexp.MustCompile(`^3\.1\.\d+$`)
	statusRE     = regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]XX|default)$`)
	templateRE   = regexp.MustCompile(`\{([^{}/]+)\}`)
	methods      = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	schemeTypes  = []string{"apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"}
	paramIn      = []string{"query", "header", "path", "cookie"}
	rootFields   = []string{"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components", "security", "tags", "externalDocs"}
	opFields     = []string{"tags", "summary", "description", "externalDocs", "operationId", "parameters", "requestBody", "responses", "callbacks", "deprecated", "security", "servers"}
	itemFields   = append([]string{"$ref", "summary", "description", "servers", "parameters"}, methods...)
	paramFields  = []string{"name", "in", "description", "required", "deprecated", "allowEmptyValue", "style", "explode", "allowReserved", "schema", "example", "examples", "content"}
	schemeFields = []string{"type", "description", "name", "in", "scheme", "bearerFormat", "flows", "openIdConnectUrl"}
	flowFields   = []string{"authorizationUrl", "tokenUrl", "refreshUrl", "scopes"}
	flowNeeds    = map[string][]string{
		"implicit":          {"authorizationUrl"},
		"password":          {"tokenUrl"},
		"clientCredentials": {"tokenUrl"},
		"authorizationCode": {"authorizationUrl", "tokenUrl"},
	}
)

// fields reports members of obj that are neither in known nor specification extensions (^x-).
func (v *validator) fields(at string, obj map[string]any, known []string) {
	for k := range obj {
		if !slices.Contains(known, k) && !strings.HasPrefix(k, "x-") {
			v.errf(at, "unknown field %q", k)
		}
	}
}

func (v *validator) document() {
	v.fields("", v.root, rootFields)
	if s, _ := v.root["openapi"].(string); !versionRE.MatchString(s) {
		v.errf("/openapi", "want a 3.1.x version string, got %v", v.root["openapi"])
	}
	info, ok := v.root["info"].(map[string]any)
	if !ok {
		v.errf("/info", "missing or not an object")
	} else {
		for _, f := range []string{"title", "version"} {
			if s, ok := info[f].(string); !ok || s == "" {
				v.errf("/info/"+f, "missing or not a non-empty string")
			}
		}
	}
	_, hasPaths := v.root["paths"]
	_, hasComponents := v.root["components"]
	_, hasWebhooks := v.root["webhooks"]
	if !hasPaths && !hasComponents && !hasWebhooks {
		v.errf("", "needs at least one of paths, components, webhooks")
	}
	if servers, ok := v.root["servers"]; ok {
		arr, ok := servers.([]any)
		if !ok {
			v.errf("/servers", "not an array")
		}
		for i, s := range arr {
			m, ok := s.(map[string]any)
			if u, _ := m["url"].(string); !ok || u == "" {
				v.errf(fmt.Sprintf("/servers/%d/url", i), "missing")
			}
		}
	}
	schemes := v.components()
	if sec, ok := v.root["security"]; ok {
		v.security("/security", sec, schemes)
	}
	if paths, ok := v.root["paths"]; ok {
		pm, ok := paths.(map[string]any)
		if !ok {
			v.errf("/paths", "not an object")
			return
		}
		for p, item := range pm {
			v.pathItem(p, item, schemes)
		}
	}
	v.refs("", v.root)
}

// components checks components.securitySchemes and returns the schemes by name.
func (v *validator) components() map[string]map[string]any {
	out := map[string]map[string]any{}
	comp, ok := v.root["components"]
	if !ok {
		return out
	}
	cm, ok := comp.(map[string]any)
	if !ok {
		v.errf("/components", "not an object")
		return out
	}
	ss, ok := cm["securitySchemes"]
	if !ok {
		return out
	}
	sm, ok := ss.(map[string]any)
	if !ok {
		v.errf("/components/securitySchemes", "not an object")
		return out
	}
	for name, s := range sm {
		at := "/components/securitySchemes/" + pointerEscape(name)
		m, ok := s.(map[string]any)
		if !ok {
			v.errf(at, "not an object")
			continue
		}
		out[name] = m
		v.scheme(at, m)
	}
	return out
}

func (v *validator) scheme(at string, m map[string]any) {
	v.fields(at, m, schemeFields)
	typ, _ := m["type"].(string)
	if !slices.Contains(schemeTypes, typ) {
		v.errf(at+"/type", "want one of %v, got %v", schemeTypes, m["type"])
		return
	}
	switch typ {
	case "oauth2":
		flows, ok := m["flows"].(map[string]any)
		if !ok || len(flows) == 0 {
			v.errf(at+"/flows", "an oauth2 scheme needs a non-empty flows object")
			return
		}
		for name, f := range flows {
			fat := at + "/flows/" + pointerEscape(name)
			needs, known := flowNeeds[name]
			if !known {
				if !strings.HasPrefix(name, "x-") {
					v.errf(fat, "unknown flow")
				}
				continue
			}
			fm, ok := f.(map[string]any)
			if !ok {
				v.errf(fat, "not an object")
				continue
			}
			v.fields(fat, fm, flowFields)
			for _, k := range needs {
				v.absURL(fat+"/"+k, fm[k], true)
			}
			if _, ok := fm["refreshUrl"]; ok {
				v.absURL(fat+"/refreshUrl", fm["refreshUrl"], true)
			}
			scopes, ok := fm["scopes"].(map[string]any)
			if !ok {
				v.errf(fat+"/scopes", "required, a map of scope name to description")
				continue
			}
			for sc, d := range scopes {
				if _, ok := d.(string); !ok {
					v.errf(fat+"/scopes/"+pointerEscape(sc), "description is not a string")
				}
			}
		}
	case "openIdConnect":
		v.absURL(at+"/openIdConnectUrl", m["openIdConnectUrl"], true)
	case "apiKey":
		if _, ok := m["name"].(string); !ok {
			v.errf(at+"/name", "required for apiKey")
		}
		if in, _ := m["in"].(string); in != "query" && in != "header" && in != "cookie" {
			v.errf(at+"/in", "want query, header or cookie")
		}
	case "http":
		if _, ok := m["scheme"].(string); !ok {
			v.errf(at+"/scheme", "required for http")
		}
	}
}

// absURL checks that x is an absolute http(s) URL.
func (v *validator) absURL(at string, x any, required bool) {
	s, ok := x.(string)
	if !ok {
		if required || x != nil {
			v.errf(at, "missing or not a string")
		}
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.errf(at, "%q is not an absolute http(s) URL", s)
	}
}

// security checks a list of Security Requirement Objects against the defined schemes.
func (v *validator) security(at string, x any, schemes map[string]map[string]any) {
	arr, ok := x.([]any)
	if !ok {
		v.errf(at, "not an array")
		return
	}
	for i, r := range arr {
		rat := fmt.Sprintf("%s/%d", at, i)
		rm, ok := r.(map[string]any)
		if !ok {
			v.errf(rat, "not an object")
			continue
		}
		for name, scopes := range rm {
			sat := rat + "/" + pointerEscape(name)
			scheme, ok := schemes[name]
			if !ok {
				v.errf(sat, "names undefined security scheme %q", name)
				continue
			}
			list, ok := scopes.([]any)
			if !ok {
				v.errf(sat, "scopes are not an array")
				continue
			}
			if scheme["type"] != "oauth2" {
				continue
			}
			defined := definedScopes(scheme)
			for _, sc := range list {
				s, ok := sc.(string)
				if !ok {
					v.errf(sat, "scope %v is not a string", sc)
				} else if !defined[s] {
					v.errf(sat, "scope %q is not defined in any flow of %q", s, name)
				}
			}
		}
	}
}

func definedScopes(scheme map[string]any) map[string]bool {
	out := map[string]bool{}
	flows, _ := scheme["flows"].(map[string]any)
	for _, f := range flows {
		fm, _ := f.(map[string]any)
		scopes, _ := fm["scopes"].(map[string]any)
		for s := range scopes {
			out[s] = true
		}
	}
	return out
}

func (v *validator) pathItem(p string, x any, schemes map[string]map[string]any) {
	at := "/paths/" + pointerEscape(p)
	if !strings.HasPrefix(p, "/") {
		v.errf(at, "a path must start with /")
	}
	item, ok := x.(map[string]any)
	if !ok {
		v.errf(at, "not an object")
		return
	}
	v.fields(at, item, itemFields)
	vars := map[string]bool{}
	for _, m := range templateRE.FindAllStringSubmatch(p, -1) {
		vars[m[1]] = true
	}
	itemParams := v.parameters(at+"/parameters", item["parameters"])
	for _, method := range methods {
		op, ok := item[method]
		if !ok {
			continue
		}
		oat := at + "/" + method
		om, ok := op.(map[string]any)
		if !ok {
			v.errf(oat, "not an object")
			continue
		}
		v.fields(oat, om, opFields)
		if id, ok := om["operationId"]; ok {
			s, _ := id.(string)
			if s == "" {
				v.errf(oat+"/operationId", "not a non-empty string")
			} else if prev, dup := v.opIDs[s]; dup {
				v.errf(oat+"/operationId", "%q is also used at %s", s, prev)
			} else {
				v.opIDs[s] = oat
			}
		}
		pathParams := map[string]bool{}
		for k := range itemParams {
			pathParams[k] = true
		}
		for k := range v.parameters(oat+"/parameters", om["parameters"]) {
			pathParams[k] = true
		}
		for name := range vars {
			if !pathParams[name] {
				v.errf(oat, "path template variable {%s} has no path parameter", name)
			}
		}
		for name := range pathParams {
			if !vars[name] {
				v.errf(oat, "path parameter %q is not in the path template", name)
			}
		}
		if r, ok := om["responses"]; ok {
			v.responses(oat+"/responses", r)
		}
		if sec, ok := om["security"]; ok {
			v.security(oat+"/security", sec, schemes)
		}
	}
}

// parameters checks a parameter list and returns the names of its path parameters.
func (v *validator) parameters(at string, x any) map[string]bool {
	out := map[string]bool{}
	if x == nil {
		return out
	}
	arr, ok := x.([]any)
	if !ok {
		v.errf(at, "not an array")
		return out
	}
	seen := map[string]bool{}
	for i, p := range arr {
		pat := fmt.Sprintf("%s/%d", at, i)
		pm, ok := p.(map[string]any)
		if !ok {
			v.errf(pat, "not an object")
			continue
		}
		if _, isRef := pm["$ref"]; isRef {
			continue
		}
		v.fields(pat, pm, paramFields)
		name, _ := pm["name"].(string)
		in, _ := pm["in"].(string)
		if name == "" {
			v.errf(pat+"/name", "missing")
		}
		if !slices.Contains(paramIn, in) {
			v.errf(pat+"/in", "want one of %v, got %v", paramIn, pm["in"])
		}
		if seen[in+"\x00"+name] {
			v.errf(pat, "duplicate parameter %s in %s", name, in)
		}
		seen[in+"\x00"+name] = true
		_, hasSchema := pm["schema"]
		_, hasContent := pm["content"]
		if hasSchema == hasContent {
			v.errf(pat, "needs exactly one of schema and content")
		}
		if in == "path" {
			if pm["required"] != true {
				v.errf(pat+"/required", "a path parameter must be required: true")
			}
			out[name] = true
		}
	}
	return out
}

func (v *validator) responses(at string, x any) {
	rm, ok := x.(map[string]any)
	if !ok {
		v.errf(at, "not an object")
		return
	}
	for code, r := range rm {
		rat := at + "/" + pointerEscape(code)
		if !statusRE.MatchString(code) && !strings.HasPrefix(code, "x-") {
			v.errf(rat, "not an HTTP status code, a range like 4XX, or default")
		}
		resp, ok := r.(map[string]any)
		if !ok {
			v.errf(rat, "not an object")
			continue
		}
		if _, isRef := resp["$ref"]; isRef {
			continue
		}
		if d, ok := resp["description"].(string); !ok || d == "" {
			v.errf(rat+"/description", "required")
		}
	}
}

// refs walks the document and checks that every local $ref resolves.
func (v *validator) refs(at string, x any) {
	switch t := x.(type) {
	case map[string]any:
		if ref, ok := t["$ref"].(string); ok && strings.HasPrefix(ref, "#") {
			if !v.resolves(ref) {
				v.errf(at+"/$ref", "%q does not resolve", ref)
			}
		}
		for k, c := range t {
			v.refs(at+"/"+pointerEscape(k), c)
		}
	case []any:
		for i, c := range t {
			v.refs(fmt.Sprintf("%s/%d", at, i), c)
		}
	}
}

func (v *validator) resolves(ref string) bool {
	var cur any = v.root
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#"), "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[tok]; !ok {
			return false
		}
	}
	return true
}

// pointerEscape escapes a JSON Pointer token (RFC 6901).
func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
