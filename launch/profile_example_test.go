package launch_test

import (
	"fmt"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

// The settings of an issuer come from its vendor profile: the VA wants no aud, athena forced PKCE,
// Epic its Epic-Client-ID header on every request.
func ExampleSettingsFromProfile() {
	for _, name := range []string{"va", "athena", "epic"} {
		p, _ := smart.LookupProfile(name)
		s := launch.SettingsFromProfile(p, "my-app")
		fmt.Printf("%s: aud omitted %v, force PKCE %v, Epic-Client-ID %q\n", name,
			s.Audience == launch.AudienceOmitted, s.ForcePKCE, s.Header.Get("Epic-Client-ID"))
	}
	// Output:
	// va: aud omitted true, force PKCE false, Epic-Client-ID ""
	// athena: aud omitted false, force PKCE true, Epic-Client-ID ""
	// epic: aud omitted false, force PKCE false, Epic-Client-ID "my-app"
}
