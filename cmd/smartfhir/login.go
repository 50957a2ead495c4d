package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the issue that builds this command.
func newLoginCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "standalone launch from the terminal (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("login: not yet implemented")
		},
	}
}
