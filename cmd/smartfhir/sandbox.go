package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newSandboxCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sandbox",
		Short: "run the offline sandbox EHR (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("sandbox: not yet implemented")
		},
	}
}
