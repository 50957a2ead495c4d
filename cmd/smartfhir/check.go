package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "conformance report of a server (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("check: not yet implemented")
		},
	}
}
