package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/smart"
)

func newProfilesCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "profiles [NAME]",
		Short: "list the vendor profiles: what real EHRs need beyond the spec",
		Long: `profiles lists the vendor presets, each a set of settings for what a kind of EHR does
differently (Epic's Epic-Client-ID header, Oracle Health's five-hour Retry-After, athena's
unadvertised PKCE, …). With NAME it shows every setting of that preset; --json prints every
setting of each, in the JSON form a user profile in the config file can use.

Pick a preset with --profile NAME, or name it as "preset" in a profile of the config file to
inherit its settings. docs/profiles.md cites the source of each setting.

  smartfhir profiles
  smartfhir profiles epic
  smartfhir profiles --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps := smart.Presets()
			if len(args) == 1 {
				p, err := smart.ProfileByName(args[0])
				if err != nil {
					return &usageError{err}
				}
				if asJSON {
					return printJSON(g.stdout, p)
				}
				return printProfile(g.stdout, p)
			}
			if asJSON {
				return printJSON(g.stdout, ps)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDESCRIPTION")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print every setting as JSON")
	return cmd
}

// printProfile writes one setting a line, "key  value", in the order of the JSON form.
func printProfile(w io.Writer, p smart.Profile) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range smart.ProfileKeys() {
		v, ok := m[k]
		if !ok {
			continue
		}
		val := strings.Trim(string(v), `"`)
		if val == "" {
			val = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, val)
	}
	return tw.Flush()
}
