package main

import "github.com/spf13/cobra"

// newTriggerCommand is completed once package fcevents lands.
func newTriggerCommand(f *factory) *cobra.Command {
	return &cobra.Command{Use: "trigger TYPE", Short: "Send a signed test event to a running server", Hidden: true}
}
