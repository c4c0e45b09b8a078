package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// enforceUsage makes every command line mistake in the tree a usageError
// (exit 2) that names the offending argument. Cobra reports a stray
// positional argument as "unknown command" and a missing one as "accepts 1
// arg(s)", both as plain errors (exit 1), and a group command such as
// `projections bogus` only prints help (exit 0); one walk over the finished
// tree fixes all of them, including commands added later.
func enforceUsage(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			// Cobra's help prints "Unknown help topic" and exits 0.
			c.Run = nil
			c.RunE = helpTopic
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
		switch {
		case c.HasSubCommands() && !c.Runnable():
			// A group: bare, it prints its help; anything else is an
			// unknown subcommand.
			c.Args = subcommandArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		case c.Runnable():
			validate := c.Args
			if validate == nil {
				validate = cobra.ArbitraryArgs
			}
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := validate(cmd, args); err != nil {
					return &usageError{err: argsError(cmd, args, err)}
				}
				// Cobra checks required and mutually exclusive flags
				// after Args, with plain errors: check them here first.
				if err := cmd.ValidateRequiredFlags(); err != nil {
					return &usageError{err: err}
				}
				if err := cmd.ValidateFlagGroups(); err != nil {
					return &usageError{err: err}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// helpTopic is `fcaudit help [command]`: the command's help, or a usage
// error naming the topic it does not know.
func helpTopic(c *cobra.Command, args []string) error {
	cmd, rest, err := c.Root().Find(args)
	if err != nil || cmd == nil || (len(rest) > 0 && cmd.HasSubCommands()) {
		return &usageError{err: fmt.Errorf("unknown help topic %q; commands: fcaudit help", strings.Join(args, " "))}
	}
	cmd.InitDefaultHelpFlag()
	cmd.InitDefaultVersionFlag()
	return cmd.Help()
}

// subcommandArgs rejects any positional argument of a group command: it
// can only be a subcommand cobra did not find.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	if len(names) > 0 {
		msg += " (commands: " + strings.Join(names, ", ") + ")"
	}
	return &usageError{err: fmt.Errorf("%s", msg)}
}

// argsError rewrites a failed Args validation so it names the argument:
// the first unexpected one, or the first missing one by its name in the
// command's Use line ("trigger TYPE" → TYPE).
func argsError(cmd *cobra.Command, args []string, err error) error {
	want := strings.Fields(cmd.Use)[1:]
	var names []string
	required := 0
	for _, w := range want {
		if strings.HasPrefix(w, "[") {
			if w == "[flags]" {
				continue
			}
			names = append(names, strings.Trim(w, "[]."))
			continue
		}
		names = append(names, strings.Trim(w, "."))
		required++
	}
	usage := "usage: " + cmd.UseLine()
	switch {
	case len(args) < required:
		return fmt.Errorf("missing argument %s for %q (%s)", names[len(args)], cmd.CommandPath(), usage)
	case len(args) > len(names):
		return fmt.Errorf("unexpected argument %q for %q (%s)", args[len(names)], cmd.CommandPath(), usage)
	}
	return fmt.Errorf("%q: %w (%s)", cmd.CommandPath(), err, usage)
}
