package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newKeygenCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "generate a signing key (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("keygen: not yet implemented")
		},
	}
}
