package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "read a FHIR resource (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("get: not yet implemented")
		},
	}
}
