// Command smartfhir is the SMART on FHIR developer CLI: discovery, login, tokens, FHIR reads and
// searches, Bulk Data export, key tooling, and an offline sandbox EHR. Run `smartfhir --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
