package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/smart"
)

// testKey reads the repository's test-only ES384 key (never use it for anything real).
func testKey() []byte {
	b, err := os.ReadFile("../testdata/keys/es384.test-only.pem")
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func ExampleThumbprint() {
	key, _, err := backend.ParsePrivateKey(testKey())
	if err != nil {
		log.Fatal(err)
	}
	kid, err := backend.Thumbprint(key.Public())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(kid)
	// Output: ADU_xSxj7qQTHrmVVxkSppEF4UxJ2YzAJ61rx5S_i-k
}

func ExamplePublicJWKS() {
	key, kid, err := backend.ParsePrivateKey(testKey())
	if err != nil {
		log.Fatal(err)
	}
	jwks, err := backend.PublicJWKS(backend.Key{Signer: key, ID: kid})
	if err != nil {
		log.Fatal(err)
	}
	var out bytes.Buffer
	_ = json.Indent(&out, jwks, "", "  ")
	fmt.Println(out.String())
	// Output:
	// {
	//   "keys": [
	//     {
	//       "alg": "ES384",
	//       "crv": "P-384",
	//       "key_ops": [
	//         "verify"
	//       ],
	//       "kid": "ADU_xSxj7qQTHrmVVxkSppEF4UxJ2YzAJ61rx5S_i-k",
	//       "kty": "EC",
	//       "use": "sig",
	//       "x": "zI159KC7BSohkU0lMgBWGnwLBgFGAG1fIEjnx8iZUM5Ud9fKBN3VKN4x7Cy26RG9",
	//       "y": "l8WbRSQrah3Zv4ofXcLP19joTneKM3zXQrzlDsi3FAUBLP_BCeGdxXXzod4djPIS"
	//     }
	//   ]
	// }
}

func ExampleDefaultScopes() {
	v2 := &smart.Configuration{Capabilities: []string{"client-confidential-asymmetric", "permission-v2"}}
	v1 := &smart.Configuration{Capabilities: []string{"permission-v1"}}
	fmt.Println(backend.DefaultScopes(v2), backend.DefaultScopes(v1))
	// Output: [system/*.rs] [system/*.read]
}

func ExampleMissingScopes() {
	tok := &smart.Token{Token: &oauth2.Token{AccessToken: "…"}, Scope: "system/Patient.rs system/Observation.r"}
	fmt.Println(backend.MissingScopes([]string{"system/Patient.read", "system/Observation.rs", "system/Group.rs"}, tok))
	// Output: [system/Observation.s system/Group.rs]
}

// A backend service reading from an EHR: discovery, assertion, caching and renewal happen inside.
func ExampleConfig_Client() {
	key, kid, err := backend.ParsePrivateKey(testKey())
	if err != nil {
		log.Fatal(err)
	}
	cfg := &backend.Config{
		ClientID:   "my-backend-service",
		FHIRBase:   "https://ehr.example.org/fhir",
		PrivateKey: key,
		KeyID:      kid,
		Header:     http.Header{"Epic-Client-ID": {"my-backend-service"}},
	}
	// The context bounds every token fetch of the client: give it the program's lifetime.
	hc := cfg.Client(context.Background())
	resp, err := hc.Get("https://ehr.example.org/fhir/Patient?_count=10")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}

// One token, for a script: Token fetches every time it is called.
func ExampleConfig_Token() {
	key, _, err := backend.ParsePrivateKey(testKey())
	if err != nil {
		log.Fatal(err)
	}
	cfg := &backend.Config{
		ClientID:      "my-backend-service",
		TokenURL:      "https://ehr.example.org/auth/token",
		Scopes:        []string{"system/Group.rs", "system/Patient.rs"},
		PrivateKey:    key,
		RequireScopes: true, // a narrower grant is an error wrapping smart.ErrScopeNotGranted
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := cfg.Token(ctx)
	if err != nil {
		log.Fatal(err) // *oauth2.RetrieveError for token endpoint errors
	}
	fmt.Println(tok.Scope, tok.Expiry)
}

// Rotating keys: publish the successor now, sign with it one JWKS cache lifetime later.
func ExampleKeySet_Rotate() {
	current, _ := backend.GenerateKey(backend.ES384, 0)
	next, _ := backend.GenerateKey(backend.ES384, 0)
	keys, err := backend.NewKeySet(backend.Key{Signer: current})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/.well-known/jwks.json", keys.Handler(5*time.Minute))
	if err := keys.Rotate(backend.Key{Signer: next}, time.Now(), 5*time.Minute); err != nil {
		log.Fatal(err)
	}
	cfg := &backend.Config{ClientID: "my-backend-service", FHIRBase: "https://ehr.example.org/fhir", Keys: keys,
		JWKSetURL: "https://app.example.org/.well-known/jwks.json"}
	_ = cfg
}
