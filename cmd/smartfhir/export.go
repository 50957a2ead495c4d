package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newExportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Bulk Data $export (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("export: not yet implemented")
		},
	}
}
