package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "revoke and forget a stored login (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("logout: not yet implemented")
		},
	}
}
