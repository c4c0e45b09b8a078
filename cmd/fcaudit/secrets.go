package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// maxSecretFileBytes bounds a secret file: a few secrets and comments. A
// larger file is a wrong path (a log, a database), not secrets.
const maxSecretFileBytes = 64 << 10

// secretSource is one secret setting, given in one of four ways, the first
// that is present winning:
//
//	--NAME value (repeatable for a list)     --NAME-file FILE
//	$ENV value (comma-separated for a list)  $ENV_FILE FILE
//
// A flag replaces both environment variables, as flags do. Giving the value
// and the file form at the same level (both flags, or both variables) is a
// usage error: which one wins would be a guess. The value itself never
// becomes a flag default, so --help cannot show it (it says "set from
// $ENV" instead), and a file keeps it out of ps and the environment.
type secretSource struct {
	name, env string
	// list: repeatable flag, comma-separated variable, any number of lines
	// in the file. Otherwise exactly one secret.
	list bool

	fs     *pflag.FlagSet
	values []string // --NAME (list)
	value  string   // --NAME (single)
	file   string   // --NAME-file
}

// register adds --NAME and --NAME-file to fl.
func (s *secretSource) register(fl *pflag.FlagSet, usage string) {
	s.fs = fl
	envNote := "env " + s.env
	fileNote := "one secret per line; blank lines and lines starting with # are ignored"
	if s.list {
		envNote += ", comma-separated"
		fl.StringArrayVar(&s.values, s.name, nil, usage+"; repeatable ("+envNote+")"+setFrom(s.env))
	} else {
		fileNote = "one secret on one line; blank lines and lines starting with # are ignored"
		fl.StringVar(&s.value, s.name, "", usage+" ("+envNote+")"+setFrom(s.env))
	}
	fl.StringVar(&s.file, s.name+"-file", "", "read --"+s.name+" from `FILE` instead ("+fileNote+
		"; env "+s.env+"_FILE)"+setFrom(s.env+"_FILE"))
}

// setFrom is the help text's note that env is set: its name, never its
// value.
func setFrom(env string) string {
	if os.Getenv(env) != "" {
		return " (set from $" + env + ")"
	}
	return ""
}

// resolve returns the configured secrets (none when the setting is absent)
// and the file they were read from ("" when they were not).
func (s *secretSource) resolve() (secrets []string, file string, err error) {
	flagValue, flagFile := s.fs.Changed(s.name), s.fs.Changed(s.name+"-file")
	switch {
	case flagValue && flagFile:
		return nil, "", flagError(s.name+"-file", fmt.Errorf("cannot be combined with --%s: pick one", s.name))
	case flagValue && s.list:
		secrets = s.values
	case flagValue:
		secrets = []string{s.value}
	case flagFile:
		file = s.file
		if file == "" {
			return nil, "", flagError(s.name+"-file", errors.New("empty file name"))
		}
	default:
		v, f := os.Getenv(s.env), os.Getenv(s.env+"_FILE")
		switch {
		case v != "" && f != "":
			return nil, "", &usageError{fmt.Errorf("%s and %s_FILE are both set: pick one", s.env, s.env)}
		case f != "":
			file = f
		case s.list:
			secrets = envList(s.env)
		case v != "":
			secrets = []string{v}
		}
	}
	if file != "" {
		if secrets, err = s.read(file); err != nil {
			return nil, file, err
		}
	}
	for i, v := range secrets {
		if v == "" {
			return nil, file, flagError(s.name, fmt.Errorf("secret #%d is empty", i+1))
		}
	}
	return secrets, file, nil
}

// read reads a secret file. Its errors name the file and the line, never
// what the line holds.
func (s *secretSource) read(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, flagError(s.name+"-file", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return nil, flagError(s.name+"-file", fmt.Errorf("read %s: %w", path, err))
	}
	if len(b) > maxSecretFileBytes {
		return nil, flagError(s.name+"-file", fmt.Errorf("%s is larger than %d bytes: not a secret file", path, maxSecretFileBytes))
	}
	secrets, err := parseSecretLines(b)
	if err != nil {
		return nil, flagError(s.name+"-file", fmt.Errorf("%s: %w", path, err))
	}
	switch {
	case len(secrets) == 0:
		return nil, flagError(s.name+"-file", fmt.Errorf("%s holds no secret", path))
	case !s.list && len(secrets) > 1:
		return nil, flagError(s.name+"-file", fmt.Errorf("%s holds %d secrets, want one", path, len(secrets)))
	}
	return secrets, nil
}

// parseSecretLines splits a secret file: one secret per line, surrounding
// spaces, tabs and a trailing CR trimmed, blank lines and lines whose first
// non-blank character is # skipped (a secret never starts with #).
func parseSecretLines(b []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxSecretFileBytes+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.Trim(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fmt.Errorf("line %d holds a control character", n)
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// hideEnvDefault keeps a flag whose default comes from the environment
// (--eventstore) from showing that value in --help: the URL may hold
// credentials. The help says "(set from $ENV)" instead.
func hideEnvDefault(fl *pflag.FlagSet, name, env string) {
	f := fl.Lookup(name)
	if f == nil || os.Getenv(env) == "" {
		return
	}
	f.DefValue = ""
	f.Usage += setFrom(env)
}
