package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newDemoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "run the example app against the sandbox (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("demo: not yet implemented")
		},
	}
}
