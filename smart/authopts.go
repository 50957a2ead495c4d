package smart

import "golang.org/x/oauth2"

// Audience returns the aud authorization parameter: the FHIR base URL the app will call
// (SMART App Launch, "Obtain authorization code"; LAUNCH-05). In an EHR launch it is exactly the iss
// the app was launched with.
func Audience(fhirBase string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("aud", fhirBase) }

// Launch returns the launch authorization parameter, echoing the opaque launch id from the EHR
// unchanged (LAUNCH-03).
func Launch(id string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("launch", id) }
