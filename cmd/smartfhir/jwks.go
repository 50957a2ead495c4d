package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newJWKSCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "jwks",
		Short: "print the public JWK Set of keys (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("jwks: not yet implemented")
		},
	}
}
