// Package deps pins the module graph during early development. Deleted once every dependency is imported for real.
package deps

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/goccy/go-json"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/gorilla/securecookie"
	_ "github.com/gorilla/sessions"
	_ "github.com/lestrrat-go/jwx/v2/jwa"
	_ "github.com/lestrrat-go/jwx/v2/jwk"
	_ "github.com/lestrrat-go/jwx/v2/jws"
	_ "github.com/lestrrat-go/jwx/v2/jwt"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/samply/golang-fhir-models/fhir-models/fhir"
	_ "github.com/spf13/cobra"
	_ "github.com/vbauerster/mpb/v8"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/oauth2/clientcredentials"
	_ "golang.org/x/sync/singleflight"
)
