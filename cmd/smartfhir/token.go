package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newTokenCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "get a backend services token (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("token: not yet implemented")
		},
	}
}
