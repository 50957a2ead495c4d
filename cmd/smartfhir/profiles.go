package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newProfilesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "profiles",
		Short: "list vendor profiles (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("profiles: not yet implemented")
		},
	}
}
