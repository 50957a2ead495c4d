package sandbox

import "net/http"

const (
	oauthURIsExt   = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
	bulkDataIG     = "http://hl7.org/fhir/uv/bulkdata"
	publisher      = "smartfhir sandbox"
	securityServer = "http://terminology.hl7.org/CodeSystem/restful-security-service"
)

var paramKindNames = [...]string{kindToken: "token", kindString: "string", kindDate: "date", kindReference: "reference"}

// metadata serves the CapabilityStatement (SBX-01): FHIR 4.0.1, SMART-on-FHIR security with the
// oauth-uris extension (the discovery a SMART v1 client uses), the types and search parameters
// served, and the three $export operations (BULK-34). It needs no token.
func (f *fhirState) metadata(w http.ResponseWriter, r *http.Request) {
	f.s.incr("fhir_requests")
	if !negotiate(w, r) {
		return
	}
	writeFHIR(w, http.StatusOK, f.capabilityStatement(r))
}

func (f *fhirState) capabilityStatement(r *http.Request) []byte {
	origin, base := f.s.Origin(r), f.s.FHIRBase(r)
	j := jsonBuf{}
	j.obj("")
	j.str("resourceType", "CapabilityStatement")
	j.str("id", "smartfhir-sandbox")
	j.str("url", base+"/metadata")
	j.str("name", "SmartfhirSandbox")
	j.str("title", "smartfhir sandbox EHR")
	j.str("status", "active")
	j.bool("experimental", true)
	j.date("date", dataEpoch)
	j.str("publisher", f.publisher())
	j.str("kind", "instance")
	j.arr("instantiates")
	j.elem(bulkDataIG + "/CapabilityStatement/bulk-data")
	j.endArr()
	j.obj("software")
	j.str("name", f.publisher())
	j.str("version", "1.0.0")
	j.end()
	j.obj("implementation")
	j.str("description", "smartfhir SMART on FHIR sandbox (synthetic data, version mode "+f.s.opts.Version+")")
	j.str("url", base)
	j.end()
	j.str("fhirVersion", "4.0.1")
	j.arr("format")
	j.elem("json")
	j.elem(mediaFHIRJSON)
	j.endArr()
	j.arr("rest")
	j.obj("")
	j.str("mode", "server")
	f.capabilitySecurity(&j, origin)
	j.arr("resource")
	for t := range numTypes {
		capabilityResource(&j, t)
	}
	j.endArr()
	j.arr("operation")
	operation(&j, "export", "export")
	j.endArr()
	j.end()
	j.endArr()
	j.end()
	return j.b
}

// capabilitySecurity writes rest.security: the oauth-uris extension and the SMART-on-FHIR service.
func (f *fhirState) capabilitySecurity(j *jsonBuf, origin string) {
	j.obj("security")
	if !f.s.as.noSMARTConfig { // meditech publishes OpenID Connect discovery only
		j.arr("extension")
		j.obj("")
		j.str("url", oauthURIsExt)
		j.arr("extension")
		for _, ep := range []string{"authorize", "token", "register", "introspect", "revoke"} {
			j.obj("")
			j.str("url", ep)
			j.str("valueUri", origin+"/auth/"+ep)
			j.end()
		}
		j.endArr()
		j.end()
		j.endArr()
	}
	j.bool("cors", true)
	j.arr("service")
	j.obj("")
	j.arr("coding")
	j.coding(term{securityServer, "SMART-on-FHIR", "SMART-on-FHIR"})
	j.endArr()
	j.str("text", "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)")
	j.end()
	j.endArr()
	j.str("description", "SMART App Launch 2.2 and Backend Services; v1 and v2 scopes")
	j.end()
}

func capabilityResource(j *jsonBuf, t rtype) {
	j.obj("")
	j.str("type", t.String())
	j.arr("interaction")
	for _, code := range []string{"read", "search-type"} {
		j.obj("")
		j.str("code", code)
		j.end()
	}
	j.endArr()
	j.arr("searchParam")
	for _, name := range paramNames(t) {
		j.obj("")
		j.str("name", name)
		j.str("type", paramKindNames[searchParams[name].kind])
		j.end()
	}
	j.endArr()
	switch t {
	case rtPatient:
		j.arr("operation")
		operation(j, "export", "patient-export")
		j.endArr()
	case rtGroup:
		j.arr("operation")
		operation(j, "export", "group-export")
		j.endArr()
	}
	j.end()
}

func operation(j *jsonBuf, name, def string) {
	j.obj("")
	j.str("name", name)
	j.str("definition", bulkDataIG+"/OperationDefinition/"+def)
	j.end()
}
