package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/spf13/cobra"
)

func newSearchCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "search TYPE [PARAM=VALUE…]",
		Short: "search FHIR resources (NDJSON with --json)",
		Long: `search runs a FHIR search (GET [base]/TYPE?PARAM=VALUE…) and prints the matches: one
"Type/id" line each, or with --json one resource per line (NDJSON). The first page only, unless
--all follows the next links (on the FHIR base's origin only, at most 10,000 pages). Warnings the
server returns as OperationOutcome entries go to stderr.

Authentication is as for 'smartfhir get'.

  smartfhir search Patient name=smith --fhir http://127.0.0.1:9090/fhir
  smartfhir search Observation patient=123 category=laboratory --all --json > obs.ndjson`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSearch(cmd.Context(), g, args[0], args[1:], all)
		},
	}
	g.serverFlags(cmd)
	g.storeFlag(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "follow next links and print every page")
	return cmd
}

var searchTypeRE = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}$`)

func runSearch(ctx context.Context, g *globals, typ string, params []string, all bool) error {
	if !searchTypeRE.MatchString(typ) {
		return usagef("%q is not a FHIR resource type (like Patient or Observation)", typ)
	}
	q := url.Values{}
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return usagef("search parameter %q: write NAME=VALUE (e.g. name=smith)", p)
		}
		q.Add(k, v)
	}
	s, ctx, cancel, err := g.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	c, a, err := g.connect(ctx, s)
	if err != nil {
		return err
	}
	n := 0
	emit := func(e fhir.BundleEntry) error {
		if e.Search != nil && e.Search.Mode != nil && *e.Search.Mode == fhir.SearchEntryModeOutcome {
			g.warnf("the server says: %s", clip(oneLine(string(e.Resource)), 500))
			return nil
		}
		n++
		return g.printEntry(e.Resource)
	}
	if all {
		for e, err := range c.SearchIter(ctx, typ, q) {
			if err != nil {
				return explainFHIRError(err, a)
			}
			if err := emit(e); err != nil {
				return err
			}
		}
		g.notef("%d resource(s)", n)
		return nil
	}
	b, resp, err := c.Search(ctx, typ, q)
	if err != nil {
		return explainFHIRError(err, a)
	}
	for _, e := range b.Entry {
		if err := emit(e); err != nil {
			return err
		}
	}
	more := ""
	if resp.NextLink != "" {
		more = "; more pages: add --all"
	}
	total := ""
	if b.Total != nil {
		total = fmt.Sprintf(" of %d", *b.Total)
	}
	g.notef("%d resource(s)%s%s", n, total, more)
	return nil
}

// printEntry prints one search match: one NDJSON line with --json, else "Type/id".
func (g *globals) printEntry(raw json.RawMessage) error {
	if g.json {
		return printRawJSON(g.stdout, raw, false)
	}
	var r struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("the server sent an entry that is not a resource: %w", err)
	}
	_, err := fmt.Fprintf(g.stdout, "%s/%s\n", oneLine(r.ResourceType), oneLine(r.ID))
	return err
}
