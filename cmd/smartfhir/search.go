package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newSearchCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "search",
		Short: "search FHIR resources (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("search: not yet implemented")
		},
	}
}
