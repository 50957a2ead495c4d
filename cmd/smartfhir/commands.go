package main

import "github.com/spf13/cobra"

// commands lists every subcommand; each lives in its own file.
func commands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newSandboxCmd(g),
		newDemoCmd(g),
		newDiscoverCmd(g),
		newCheckCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
		newTokenCmd(g),
		newGetCmd(g),
		newSearchCmd(g),
		newExportCmd(g),
		newKeygenCmd(g),
		newJWKSCmd(g),
		newProfilesCmd(g),
		newIntrospectCmd(g),
	}
}
