package smarttest_test

import (
	"fmt"

	"github.com/smartfhir/smartfhir/smart/smarttest"
)

func ExampleServer_LaunchURL() {
	srv := &smarttest.Server{FHIRBase: "http://127.0.0.1:9090/fhir"} // as NewServer fills it
	fmt.Println(srv.LaunchURL("https://app.example/launch", "l-123"))
	fmt.Println(srv.LaunchURL("https://app.example/launch?tenant=a", "l-123"))
	// Output:
	// https://app.example/launch?iss=http%3A%2F%2F127.0.0.1%3A9090%2Ffhir&launch=l-123
	// https://app.example/launch?tenant=a&iss=http%3A%2F%2F127.0.0.1%3A9090%2Ffhir&launch=l-123
}
