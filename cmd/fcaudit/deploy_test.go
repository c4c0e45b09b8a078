package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../.."

// dockerInstr is one Dockerfile instruction with continuation lines joined.
type dockerInstr struct {
	op, args string
	stage    int // index of the FROM it belongs to
}

func parseDockerfile(t *testing.T, path string) []dockerInstr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstr
	stage, cur := -1, ""
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		op, args, _ := strings.Cut(cur, " ")
		op = strings.ToUpper(op)
		if op == "FROM" {
			stage++
		}
		out = append(out, dockerInstr{op: op, args: strings.TrimSpace(args), stage: stage})
		cur = ""
	}
	return out
}

// execForm reads a JSON exec-form argument list (["a", "b"]).
func execForm(t *testing.T, op, s string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil || len(v) == 0 {
		t.Fatalf("%s %s: want the exec form [\"…\"]: %v", op, s, err)
	}
	return v
}

// isSubcommand reports whether args (after the binary) name a real command
// of fcaudit's tree, by running its --help.
func isSubcommand(t *testing.T, args []string) bool {
	t.Helper()
	root := NewRootCommand(nil, io.Discard, io.Discard)
	c, rest, err := root.Find(args)
	return err == nil && c != root && len(rest) == 0
}

// TestDockerfile lints the Dockerfile, since no Docker engine runs here:
// multi-stage, a static build of ./cmd/fcaudit, every COPY source from the
// build context exists (and is not .dockerignored), the image runs as
// non-root with a /data volume, the entrypoint is the binary copied from
// the build stage, and CMD and HEALTHCHECK run real subcommands.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	ignored := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				ignored[l] = true
			}
		}
	}
	var (
		stages                   int
		builtOut                 string // -o of the go build
		binary                   string // where the final stage has it
		user, entry, cmd, health []string
		volumeData, staticBuild  bool
	)
	for _, in := range ins {
		switch in.op {
		case "FROM":
			stages++
		case "RUN":
			if strings.Contains(in.args, "go build") {
				staticBuild = strings.Contains(in.args, "CGO_ENABLED=0") && strings.Contains(in.args, "./cmd/fcaudit")
				f := strings.Fields(in.args)
				for i, a := range f {
					if a == "-o" && i+1 < len(f) {
						builtOut = f[i+1]
					}
				}
			}
		case "COPY":
			f := strings.Fields(in.args)
			from := ""
			var paths []string
			for _, a := range f {
				if strings.HasPrefix(a, "--from=") {
					from = strings.TrimPrefix(a, "--from=")
				} else if !strings.HasPrefix(a, "--") {
					paths = append(paths, a)
				}
			}
			if len(paths) < 2 {
				t.Errorf("COPY %s: want sources and a destination", in.args)
				continue
			}
			srcs, dst := paths[:len(paths)-1], paths[len(paths)-1]
			if from != "" {
				if in.stage == stages-1 && len(srcs) == 1 && srcs[0] == builtOut {
					binary = dst
				}
				continue
			}
			for _, src := range srcs {
				if src == "." {
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
				if ignored[src] {
					t.Errorf("COPY %s: the file is in .dockerignore", src)
				}
			}
		case "USER":
			user = strings.Fields(in.args)
		case "VOLUME":
			volumeData = strings.Contains(in.args, `"/data"`) || in.args == "/data"
		case "ENTRYPOINT":
			entry = execForm(t, in.op, in.args)
		case "CMD":
			cmd = execForm(t, in.op, in.args)
		case "HEALTHCHECK":
			_, after, ok := strings.Cut(in.args, "CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK %s: no CMD", in.args)
			}
			health = execForm(t, in.op, strings.TrimSpace(after))
		}
	}
	if stages < 2 || !staticBuild || builtOut == "" {
		t.Errorf("want a multi-stage build with a static (CGO_ENABLED=0) go build -o … ./cmd/fcaudit: stages %d, static %t, out %q", stages, staticBuild, builtOut)
	}
	if len(user) != 1 || user[0] == "root" || strings.HasPrefix(user[0], "0") {
		t.Errorf("USER %v: want a non-root user", user)
	}
	if !volumeData {
		t.Error("no VOLUME /data")
	}
	if binary == "" || len(entry) != 1 || entry[0] != binary {
		t.Errorf("ENTRYPOINT %v: want the binary copied from the build stage (%q)", entry, binary)
	}
	if !isSubcommand(t, cmd) {
		t.Errorf("CMD %v is not an fcaudit command", cmd)
	}
	if len(health) < 2 || health[0] != binary || !isSubcommand(t, health[1:]) {
		t.Errorf("HEALTHCHECK CMD %v: want %s and an fcaudit command", health, binary)
	}
	// The image configures serve through the environment: those must be
	// variables the commands read.
	for _, in := range ins {
		if in.op != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			name, _, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(name, "FCAUDIT_") || !sourceMentions(t, `"`+name+`"`) {
				t.Errorf("ENV %s: not a variable fcaudit reads", name)
			}
		}
	}
}

// sourceMentions reports whether a non-test Go file of this package holds s.
func sourceMentions(t *testing.T, s string) bool {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// TestSystemdUnit checks deploy/fcaudit.service: ExecStart runs a real
// serve, the data directory is the unit's StateDirectory, secrets come from
// an EnvironmentFile (never the unit), and the hardening options are there.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "fcaudit.service"))
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Errorf("unit line %q is not key=value", l)
		}
		kv[k] = append(kv[k], v)
	}
	exec := strings.Fields(strings.Join(kv["ExecStart"], ""))
	if len(exec) < 2 || !filepath.IsAbs(exec[0]) || !isSubcommand(t, exec[1:2]) || exec[1] != "serve" {
		t.Errorf("ExecStart %v: want an absolute fcaudit path and serve", exec)
	}
	if !strings.Contains(strings.Join(kv["Environment"], " "), "FCAUDIT_DATA_DIR=/var/lib/"+strings.Join(kv["StateDirectory"], "")) {
		t.Errorf("FCAUDIT_DATA_DIR is not the StateDirectory: %v %v", kv["Environment"], kv["StateDirectory"])
	}
	if len(kv["EnvironmentFile"]) == 0 || strings.Contains(string(b), "Environment=STRIPE_WEBHOOK_SECRET") {
		t.Error("secrets must come from an EnvironmentFile, not the unit")
	}
	for k, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "DynamicUser": "yes", "CapabilityBoundingSet": "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute": "yes", "UMask": "0077"} {
		if v, ok := kv[k]; !ok || v[0] != want {
			t.Errorf("%s=%v, want %q", k, v, want)
		}
	}
}

// TestHealthcheck: the HEALTHCHECK's command passes against a serving
// fcaudit, reached through a wildcard --listen as the image's
// FCAUDIT_LISTEN=0.0.0.0:8080, and fails (exit 1) when nothing listens.
func TestHealthcheck(t *testing.T) {
	base := startServe(t, t.TempDir(), "--webhook-secret", "whsec_hc", "--api-token", "tok_hc")
	port := base[strings.LastIndex(base, ":")+1:]
	ctx := context.Background()
	if code, out, errOut := runCmd(t, ctx, "healthcheck", "--listen", "0.0.0.0:"+port); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("healthcheck: %d %q %q", code, out, errOut)
	}
	t.Setenv("FCAUDIT_LISTEN", "127.0.0.1:"+port)
	if code, _, errOut := runCmd(t, ctx, "healthcheck"); code != 0 {
		t.Fatalf("healthcheck from FCAUDIT_LISTEN: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, ctx, "healthcheck", "--listen", freePort(t)); code != exitFailure || !strings.Contains(errOut, "unhealthy") {
		t.Fatalf("healthcheck with nothing listening: %d %q", code, errOut)
	}
}
