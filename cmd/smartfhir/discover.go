package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newDiscoverCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "discover",
		Short: "show a server's SMART configuration (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("discover: not yet implemented")
		},
	}
}
