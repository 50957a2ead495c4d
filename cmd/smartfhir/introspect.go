package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newIntrospectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "introspect",
		Short: "introspect an access token (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("introspect: not yet implemented")
		},
	}
}
