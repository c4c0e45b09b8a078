// Command compare is the whole-service benchmark behind `make bench`: it
// starts the verify-only and hand-written reference handlers
// (bench/refserver) and `fcaudit serve`, each on a free loopback port with a
// fresh data directory, sends every one of them exactly the same prepared
// load (package loadgen, the engine of `fcaudit loadgen`), and prints
// throughput ratios measured side by side in the same run.
//
// Rounds interleave the targets (the order rotates each round) and ratios
// are taken within a round, then the median over rounds is reported: on a
// small, shared machine that cancels most of the noise that comparing runs
// taken minutes apart would not.
//
// Optional targets: "postgres" (bench/pgref, a stripe-go + pgx handler
// INSERTing into a PostgreSQL server given by -pg-dsn; bench/postgres.sh
// starts a throwaway one) and "fcaudit-seeded" (-seed-events N: serve on a
// store that already holds N events, seeded once with bench/seedstore and
// its read model caught up before the first round, so the empty and the
// seeded store are measured in the same run; the seeded store keeps the
// events sent to it, so each round sends a freshly prepared load to every
// target, and a second seeded target in a round — fcaudit-alt-seeded, with
// -alt — gets another load of the same shape).
//
// Everything listens on 127.0.0.1 and stops by itself. Usage:
//
//	go build -o bin/fcaudit ./cmd/fcaudit && go build -o bin/refserver ./bench/refserver
//	go run ./bench/compare -fcaudit bin/fcaudit -refserver bin/refserver -n 100000 -c 64 -rounds 3
//	go run ./bench/compare -only fcaudit,fcaudit-seeded -seed-events 2000000 -seedstore bin/seedstore -seed-dir /var/tmp/fcseed
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fcaudit/fcaudit/internal/loadgen"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// Targets of docs/performance.md, for this 2-core machine.
const (
	targetVsVerify      = 0.8
	targetVsHandwritten = 3.0
	targetP99           = 100 * time.Millisecond
	// Large-store, Postgres and long-run targets.
	targetVsPostgres     = 2.0
	targetSeededVsEmpty  = 0.9
	targetSeededP99Ratio = 1.5
)

type target struct {
	name string
	// start returns the command serving the webhook at addr with data in dir.
	start func(addr, dir string) *exec.Cmd
}

type sample struct {
	Round  int            `json:"round"`
	Target string         `json:"target"`
	Result loadgen.Result `json:"result"`
	// PeakRSS is the server's VmHWM at the end of the run (Linux only).
	PeakRSS int64 `json:"peak_rss_bytes,omitempty"`
	// CPUPerRequest is the server's CPU time (user+system) during the run
	// divided by the requests answered (Linux only): what each request
	// costs the server, independent of how busy the machine was.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns,omitempty"`
	// LoadgenCPUPerRequest is the same for this process (the senders),
	// which shares the machine with the server.
	LoadgenCPUPerRequest time.Duration `json:"loadgen_cpu_per_request_ns,omitempty"`
}

func main() {
	var (
		fcaudit   = flag.String("fcaudit", "bin/fcaudit", "fcaudit binary")
		refserver = flag.String("refserver", "bin/refserver", "reference handler binary (bench/refserver)")
		n         = flag.Int("n", 100000, "requests per run (≈10 s or more: shorter runs are dominated by warm-up)")
		c         = flag.Int("c", 64, "concurrent senders")
		rounds    = flag.Int("rounds", 3, "rounds (each runs every target once)")
		size      = flag.Int("size", loadgen.DefaultSize, "body size in bytes")
		accounts  = flag.Int("accounts", 10000, "distinct FC accounts")
		only      = flag.String("only", "", "comma-separated subset of targets: verify-only,hand-written,fcaudit,fcaudit-alt,postgres[,postgres-pool-N],fcaudit-seeded,fcaudit-alt-seeded")
		alt       = flag.String("alt", "", "a second fcaudit binary (a candidate change), run as target fcaudit-alt and compared with fcaudit")
		jsonOut   = flag.Bool("json", false, "print every sample and the summary as JSON")
		strict    = flag.Bool("strict", false, "exit 1 when a performance target is missed (errors always fail)")
		profile   = flag.String("profile", "", "write a CPU profile of fcaudit serve (first round) to this file, taken with serve --pprof")
		profSecs  = flag.Int("profile-seconds", 8, "length of the -profile sample; keep it below the run's duration")
		profTgt   = flag.String("profile-target", "fcaudit", "which fcaudit targets -profile samples (comma-separated: fcaudit, fcaudit-alt, fcaudit-seeded; with more than one, the target's name is added to each file's name)")
		pgref     = flag.String("pgref", "bin/pgref", "PostgreSQL reference handler binary (bench/pgref), for target postgres")
		pgDSN     = flag.String("pg-dsn", "", "PostgreSQL connection string: adds target postgres (bench/postgres.sh starts a throwaway server)")
		pgPool    = flag.String("pg-pool", "16", "pgxpool size of target postgres; more sizes after commas add targets postgres-pool-N (a sweep in the same run)")
		seedN     = flag.Int("seed-events", 0, "adds target fcaudit-seeded: serve on a store seeded with this many events")
		seedAcc   = flag.Int("seed-accounts", 0, "accounts of the seeded store (default seed-events/10)")
		seedBin   = flag.String("seedstore", "bin/seedstore", "bench/seedstore binary, for -seed-events")
		seedDir   = flag.String("seed-dir", "", "data directory of the seeded store: reused if it already holds an event log, kept afterwards (default: a temporary one, removed)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, options{fcaudit: *fcaudit, refserver: *refserver, n: *n, c: *c, rounds: *rounds,
		size: *size, accounts: *accounts, only: *only, alt: *alt, json: *jsonOut, strict: *strict, profile: *profile, profileSeconds: *profSecs,
		profileTarget: *profTgt, pgref: *pgref, pgDSN: *pgDSN, pgPool: *pgPool,
		seedEvents: *seedN, seedAccounts: *seedAcc, seedstore: *seedBin, seedDir: *seedDir}, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
	}
	os.Exit(code)
}

type options struct {
	fcaudit, refserver string
	alt                string
	n, c, rounds       int
	size, accounts     int
	only               string
	json, strict       bool
	profile            string
	profileSeconds     int
	profileTarget      string
	pgref, pgDSN       string
	pgPool             string
	seedEvents         int
	seedAccounts       int
	seedstore, seedDir string
}

func run(ctx context.Context, o options, out, errOut io.Writer) (int, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	secret := "whsec_bench_" + hex.EncodeToString(b[:])

	serve := func(bin string) func(addr, dir string) *exec.Cmd {
		return func(addr, dir string) *exec.Cmd {
			return exec.Command(bin, "serve", "--data-dir", dir, "--listen", addr,
				"--webhook-secret", secret, "--api-token", "bench", "--log-level", "warn")
		}
	}
	all := []target{
		{"verify-only", func(addr, _ string) *exec.Cmd {
			return exec.Command(o.refserver, "-mode", "verify", "-listen", addr, "-secret", secret)
		}},
		{"hand-written", func(addr, dir string) *exec.Cmd {
			return exec.Command(o.refserver, "-mode", "handwritten", "-listen", addr, "-secret", secret, "-db", filepath.Join(dir, "ref.db"))
		}},
		{"fcaudit", serve(o.fcaudit)},
	}
	if o.alt != "" {
		all = append(all, target{"fcaudit-alt", serve(o.alt)})
	}
	if o.pgDSN != "" {
		for i, size := range strings.Split(o.pgPool, ",") {
			if n, err := strconv.Atoi(size); err != nil || n < 1 {
				return 2, fmt.Errorf("-pg-pool %q: want sizes ≥ 1, comma-separated", o.pgPool)
			}
			name := "postgres"
			if i > 0 {
				name = "postgres-pool-" + size
			}
			all = append(all, target{name, func(addr, _ string) *exec.Cmd {
				return exec.Command(o.pgref, "-listen", addr, "-secret", secret, "-dsn", o.pgDSN,
					"-pool", size, "-reset")
			}})
		}
	}
	if o.seedEvents > 0 {
		seeded := serve(o.fcaudit)
		all = append(all, target{"fcaudit-seeded", func(addr, _ string) *exec.Cmd {
			return seeded(addr, o.seedDir)
		}})
		if o.alt != "" {
			// The candidate on the same seeded store (which both grow by
			// a round's load each time they run; the order rotates).
			altSeeded := serve(o.alt)
			all = append(all, target{"fcaudit-alt-seeded", func(addr, _ string) *exec.Cmd {
				return altSeeded(addr, o.seedDir)
			}})
		}
	}
	targets := all
	if o.only != "" {
		targets = nil
		for _, t := range all {
			if slices.Contains(strings.Split(o.only, ","), t.name) {
				targets = append(targets, t)
			}
		}
		if len(targets) == 0 {
			return 2, fmt.Errorf("-only %q names no target", o.only)
		}
	}
	if slices.ContainsFunc(targets, func(t target) bool { return strings.HasSuffix(t.name, "-seeded") }) {
		if o.seedDir == "" {
			dir, err := os.MkdirTemp("", "fcaudit-seeded-")
			if err != nil {
				return 1, err
			}
			defer os.RemoveAll(dir)
			o.seedDir = dir
		}
		if err := seedStore(ctx, o, serve(o.fcaudit), errOut); err != nil {
			return 1, fmt.Errorf("seeding: %w", err)
		}
	}

	fmt.Fprintf(errOut, "preparing %d signed events of ≈%d bytes over %d accounts…\n", o.n, o.size, o.accounts)
	plan, err := loadgen.Prepare(ctx, loadgen.Config{Secret: secret, Requests: o.n, Concurrency: o.c, Accounts: o.accounts, Size: o.size})
	if err != nil {
		return 1, err
	}
	var samples []sample
	// sentToSeeded: the seeded store already holds plan's events. It
	// keeps every load sent to it, so a seeded target never gets a load
	// the store has seen (those would all be duplicates): a new one of the
	// same shape is prepared first, outside the clock.
	sentToSeeded := false
	for r := range o.rounds {
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			if seeded := strings.HasSuffix(t.name, "-seeded"); seeded && sentToSeeded || !seeded && r > 0 && sentToSeeded && i == 0 {
				// (At the start of a round the new load also goes to
				// the empty-store targets, which then share it with the
				// round's first seeded target.)
				if plan, err = loadgen.Prepare(ctx, loadgen.Config{Secret: secret, Requests: o.n, Concurrency: o.c, Accounts: o.accounts, Size: o.size}); err != nil {
					return 1, err
				}
				sentToSeeded = false
			}
			if strings.HasSuffix(t.name, "-seeded") {
				sentToSeeded = true
			}
			plan.Resign() // outside the clock: no sender signs during a run
			prof := ""
			if tgts := strings.Split(o.profileTarget, ","); r == 0 && slices.Contains(tgts, t.name) {
				prof = o.profile
				if len(tgts) > 1 {
					// One file per target: serve.prof → serve-fcaudit-seeded.prof.
					ext := filepath.Ext(prof)
					prof = strings.TrimSuffix(prof, ext) + "-" + t.name + ext
				}
			}
			s, err := runOne(ctx, t, plan, prof, o.profileSeconds, errOut)
			if err != nil {
				return 1, fmt.Errorf("round %d, %s: %w", r+1, t.name, err)
			}
			s.Round = r + 1
			fmt.Fprintf(errOut, "round %d %-12s %7.0f req/s  p50 %-8s p99 %-8s errors %d\n", r+1, t.name,
				s.Result.Throughput, s.Result.Latency.P50.Round(10*time.Microsecond), s.Result.Latency.P99.Round(10*time.Microsecond), s.Result.ErrorCount)
			samples = append(samples, s)
		}
	}
	sum := summarize(samples, o.rounds)
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Samples []sample `json:"samples"`
			Summary summary  `json:"summary"`
		}{samples, sum}); err != nil {
			return 1, err
		}
	} else {
		writeSummary(out, sum, o)
	}
	switch {
	case sum.Errors > 0:
		return 1, fmt.Errorf("%d requests failed", sum.Errors)
	case o.strict && !sum.allMet():
		return 1, errors.New("a performance target was missed")
	}
	return 0, nil
}

// runOne starts t on a free port with a fresh directory, runs the plan
// against it and stops it.
func runOne(ctx context.Context, t target, plan *loadgen.Plan, profile string, profileSeconds int, errOut io.Writer) (sample, error) {
	dir, err := os.MkdirTemp("", "fcaudit-bench-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return sample{}, err
	}
	cmd := t.start(addr, dir)
	var pprofAddr string
	if profile != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return sample{}, err
		}
		cmd.Args = append(cmd.Args, "--pprof", pprofAddr)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return sample{}, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	base := "http://" + addr
	if err := waitHealthy(ctx, base+"/healthz", exited); err != nil {
		logs, _ := os.ReadFile(logf.Name())
		return sample{}, fmt.Errorf("%w; server output:\n%s", err, logs)
	}
	profDone := make(chan error, 1)
	if profile != "" {
		go func() { profDone <- fetchProfile(ctx, pprofAddr, profile, profileSeconds) }()
	} else {
		profDone <- nil
	}
	cpu0, self0 := cpuTime(cmd.Process.Pid), cpuTime(os.Getpid())
	res, err := plan.Run(ctx, base+"/webhooks/stripe", nil)
	if err != nil {
		return sample{}, err
	}
	if err := <-profDone; err != nil {
		fmt.Fprintf(errOut, "profile: %v\n", err)
	} else if profile != "" {
		fmt.Fprintf(errOut, "wrote CPU profile of %s to %s (go tool pprof -top -cum %s %s)\n", t.name, profile, cmd.Path, profile)
	}
	s := sample{Target: t.name, Result: res, PeakRSS: peakRSS(cmd.Process.Pid)}
	if cpu1 := cpuTime(cmd.Process.Pid); cpu1 > 0 && res.Requests > 0 {
		s.CPUPerRequest = (cpu1 - cpu0) / time.Duration(res.Requests)
		s.LoadgenCPUPerRequest = (cpuTime(os.Getpid()) - self0) / time.Duration(res.Requests)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		fmt.Fprintf(errOut, "%s did not stop within 30s of SIGTERM; killed\n", t.name)
	}
	stopped = true
	return s, nil
}

// seedStore fills o.seedDir with o.seedEvents events (bench/seedstore)
// unless it already holds an event log, then runs serve on it until its
// read models have caught up, so no measured round pays for building them.
func seedStore(ctx context.Context, o options, serve func(addr, dir string) *exec.Cmd, errOut io.Writer) error {
	if _, err := os.Stat(filepath.Join(o.seedDir, sqlite.FileName)); err == nil {
		fmt.Fprintf(errOut, "reusing the event log in %s (not re-seeded)\n", o.seedDir)
	} else {
		acc := o.seedAccounts
		if acc <= 0 {
			acc = max(1, o.seedEvents/10)
		}
		start := time.Now()
		cmd := exec.CommandContext(ctx, o.seedstore, "-data-dir", o.seedDir,
			"-events", strconv.Itoa(o.seedEvents), "-accounts", strconv.Itoa(acc))
		cmd.Stdout, cmd.Stderr = errOut, errOut
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", o.seedstore, err)
		}
		fmt.Fprintf(errOut, "seeded %d events over %d accounts in %s\n", o.seedEvents, acc, time.Since(start).Round(time.Second))
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := serve(addr, o.seedDir)
	cmd.Stdout, cmd.Stderr = errOut, errOut
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	base := "http://" + addr
	if err := waitHealthy(ctx, base+"/healthz", exited); err != nil {
		return err
	}
	start := time.Now()
	for {
		lag, err := projectionLag(ctx, base+"/metrics")
		if err == nil && lag == 0 {
			fmt.Fprintf(errOut, "read models of the seeded store caught up after %s\n", time.Since(start).Round(time.Second))
			return nil
		}
		if time.Since(start) > 60*time.Minute {
			return fmt.Errorf("read models not caught up after an hour (lag %d, %v)", lag, err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("serve exited while catching up: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// projectionLag sums fcaudit_projection_lag_events over the projections
// serve reports; an error if it reports none.
func projectionLag(ctx context.Context, url string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum int64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "fcaudit_projection_lag_events{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += int64(v)
		found = true
	}
	if !found {
		return 0, errors.New("no fcaudit_projection_lag_events in /metrics")
	}
	return sum, nil
}

// fetchProfile takes a CPU profile of seconds from serve's --pprof listener,
// starting as the load starts, and writes it to path.
func fetchProfile(ctx context.Context, addr, path string, seconds int) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy polls url until it answers 200, the process exits, or 15 s.
func waitHealthy(ctx context.Context, url string, exited <-chan error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("server exited before becoming healthy: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after 15s", url)
		}
	}
}

// peakRSS reads VmHWM of pid (0 where /proc is unavailable).
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime reads the user+system CPU time of pid from /proc (0 elsewhere).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the whole line, in clock ticks (100/s on
	// Linux).
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

type targetSummary struct {
	Name string `json:"name"`
	// MedianThroughput over rounds (req/s); WorstP99 the largest p99.
	MedianThroughput float64       `json:"median_throughput"`
	MedianP50        time.Duration `json:"median_p50_ns"`
	WorstP99         time.Duration `json:"worst_p99_ns"`
	Errors           int           `json:"errors"`
	PeakRSS          int64         `json:"peak_rss_bytes"`
	// MedianCPUPerRequest is the server CPU time per request (Linux).
	MedianCPUPerRequest time.Duration `json:"median_cpu_per_request_ns"`
	// MedianLoadgenCPUPerRequest is the senders' CPU time per request.
	MedianLoadgenCPUPerRequest time.Duration `json:"median_loadgen_cpu_per_request_ns"`
}

type summary struct {
	Targets []targetSummary `json:"targets"`
	// Ratios of fcaudit's throughput, computed within each round, median
	// over rounds (0 when a target was not run).
	VsVerify        float64   `json:"fcaudit_vs_verify_only"`
	VsHandwritten   float64   `json:"fcaudit_vs_hand_written"`
	VsVerifyAll     []float64 `json:"fcaudit_vs_verify_only_per_round"`
	VsHandAll       []float64 `json:"fcaudit_vs_hand_written_per_round"`
	AltVsFcaudit    float64   `json:"alt_vs_fcaudit,omitempty"`
	AltVsFcauditAll []float64 `json:"alt_vs_fcaudit_per_round,omitempty"`
	// fcaudit-alt-seeded against fcaudit-seeded: an A/B on the seeded store.
	AltSeededVsSeeded    float64   `json:"alt_seeded_vs_seeded,omitempty"`
	AltSeededVsSeededAll []float64 `json:"alt_seeded_vs_seeded_per_round,omitempty"`
	VsPostgres           float64   `json:"fcaudit_vs_postgres,omitempty"`
	VsPostgresAll        []float64 `json:"fcaudit_vs_postgres_per_round,omitempty"`
	// Seeded: fcaudit-seeded against fcaudit (the empty store), throughput
	// and p99, within each round, median over rounds.
	SeededVsEmpty     float64       `json:"seeded_vs_empty,omitempty"`
	SeededVsEmptyAll  []float64     `json:"seeded_vs_empty_per_round,omitempty"`
	SeededP99Ratio    float64       `json:"seeded_p99_vs_empty,omitempty"`
	SeededP99RatioAll []float64     `json:"seeded_p99_vs_empty_per_round,omitempty"`
	FcauditP99        time.Duration `json:"fcaudit_worst_p99_ns"`
	Errors            int           `json:"errors"`
}

// allMet reports whether every target of the ratios that were measured is
// met.
func (s summary) allMet() bool {
	ok := func(xs []float64, got float64, good func(float64) bool) bool { return len(xs) == 0 || good(got) }
	return ok(s.VsVerifyAll, s.VsVerify, func(x float64) bool { return x >= targetVsVerify }) &&
		ok(s.VsHandAll, s.VsHandwritten, func(x float64) bool { return x >= targetVsHandwritten }) &&
		ok(s.VsPostgresAll, s.VsPostgres, func(x float64) bool { return x >= targetVsPostgres }) &&
		ok(s.SeededVsEmptyAll, s.SeededVsEmpty, func(x float64) bool { return x >= targetSeededVsEmpty }) &&
		ok(s.SeededP99RatioAll, s.SeededP99Ratio, func(x float64) bool { return x <= targetSeededP99Ratio }) &&
		(s.FcauditP99 == 0 || s.FcauditP99 < targetP99) && s.Errors == 0
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func summarize(samples []sample, rounds int) summary {
	var s summary
	byTarget := map[string][]sample{}
	for _, x := range samples {
		byTarget[x.Target] = append(byTarget[x.Target], x)
		s.Errors += x.Result.ErrorCount
	}
	var names []string
	for _, x := range samples {
		if !slices.Contains(names, x.Target) {
			names = append(names, x.Target)
		}
	}
	// A stable order: the references, then fcaudit's variants; pool
	// sweep targets after "postgres" by name.
	rank := func(n string) int {
		i := slices.Index([]string{"verify-only", "hand-written", "postgres", "fcaudit", "fcaudit-alt", "fcaudit-seeded", "fcaudit-alt-seeded"}, n)
		if i < 0 && strings.HasPrefix(n, "postgres-") {
			return 2
		}
		return i
	}
	slices.SortStableFunc(names, func(a, b string) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		xs, ok := byTarget[name]
		if !ok {
			continue
		}
		ts := targetSummary{Name: name}
		var tp, p50, cpu, lcpu []float64
		for _, x := range xs {
			tp = append(tp, x.Result.Throughput)
			p50 = append(p50, float64(x.Result.Latency.P50))
			cpu = append(cpu, float64(x.CPUPerRequest))
			lcpu = append(lcpu, float64(x.LoadgenCPUPerRequest))
			ts.WorstP99 = max(ts.WorstP99, x.Result.Latency.P99)
			ts.Errors += x.Result.ErrorCount
			ts.PeakRSS = max(ts.PeakRSS, x.PeakRSS)
		}
		ts.MedianThroughput, ts.MedianP50 = median(tp), time.Duration(median(p50))
		ts.MedianCPUPerRequest = time.Duration(median(cpu))
		ts.MedianLoadgenCPUPerRequest = time.Duration(median(lcpu))
		s.Targets = append(s.Targets, ts)
		if name == "fcaudit" {
			s.FcauditP99 = ts.WorstP99
		}
	}
	for r := 1; r <= rounds; r++ {
		find := func(name string) (loadgen.Result, bool) {
			for _, x := range byTarget[name] {
				if x.Round == r {
					return x.Result, true
				}
			}
			return loadgen.Result{}, false
		}
		get := func(name string) float64 {
			res, _ := find(name)
			return res.Throughput
		}
		f, v, h, a := get("fcaudit"), get("verify-only"), get("hand-written"), get("fcaudit-alt")
		if sd, as := get("fcaudit-seeded"), get("fcaudit-alt-seeded"); sd > 0 && as > 0 {
			s.AltSeededVsSeededAll = append(s.AltSeededVsSeededAll, as/sd)
		}
		if pg := get("postgres"); f > 0 && pg > 0 {
			s.VsPostgresAll = append(s.VsPostgresAll, f/pg)
		}
		if sd, ok := find("fcaudit-seeded"); ok && f > 0 && sd.Throughput > 0 {
			empty, _ := find("fcaudit")
			s.SeededVsEmptyAll = append(s.SeededVsEmptyAll, sd.Throughput/f)
			if empty.Latency.P99 > 0 {
				s.SeededP99RatioAll = append(s.SeededP99RatioAll, float64(sd.Latency.P99)/float64(empty.Latency.P99))
			}
		}
		if f > 0 && a > 0 {
			s.AltVsFcauditAll = append(s.AltVsFcauditAll, a/f)
		}
		if f > 0 && v > 0 {
			s.VsVerifyAll = append(s.VsVerifyAll, f/v)
		}
		if f > 0 && h > 0 {
			s.VsHandAll = append(s.VsHandAll, f/h)
		}
	}
	s.VsVerify, s.VsHandwritten = median(s.VsVerifyAll), median(s.VsHandAll)
	s.AltVsFcaudit = median(s.AltVsFcauditAll)
	s.VsPostgres = median(s.VsPostgresAll)
	s.AltSeededVsSeeded = median(s.AltSeededVsSeededAll)
	s.SeededVsEmpty, s.SeededP99Ratio = median(s.SeededVsEmptyAll), median(s.SeededP99RatioAll)
	return s
}

func writeSummary(w io.Writer, s summary, o options) {
	fmt.Fprintf(w, "\nwhole service: %d requests × %d rounds per target, %d senders, ≈%d-byte bodies, loopback\n\n", o.n, o.rounds, o.c, o.size)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tmedian req/s\tmedian p50\tworst p99\terrors\tpeak RSS\tserver CPU/req\tloadgen CPU/req")
	for _, t := range s.Targets {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%d MiB\t%dµs\t%dµs\n", t.Name, t.MedianThroughput,
			t.MedianP50.Round(10*time.Microsecond), t.WorstP99.Round(10*time.Microsecond), t.Errors, t.PeakRSS>>20,
			t.MedianCPUPerRequest.Microseconds(), t.MedianLoadgenCPUPerRequest.Microseconds())
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	ratios := func(xs []float64) string {
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		return strings.Join(parts, " ")
	}
	if len(s.VsVerifyAll) > 0 {
		fmt.Fprintf(w, "fcaudit / verify-only   %.2f×  (rounds: %s)  target ≥ %.1f×: %s\n", s.VsVerify, ratios(s.VsVerifyAll), targetVsVerify, mark(s.VsVerify >= targetVsVerify))
	}
	if len(s.VsHandAll) > 0 {
		fmt.Fprintf(w, "fcaudit / hand-written  %.2f×  (rounds: %s)  target ≥ %.1f×: %s\n", s.VsHandwritten, ratios(s.VsHandAll), targetVsHandwritten, mark(s.VsHandwritten >= targetVsHandwritten))
	}
	if len(s.VsPostgresAll) > 0 {
		fmt.Fprintf(w, "fcaudit / postgres      %.2f×  (rounds: %s)  target ≥ %.1f×: %s\n", s.VsPostgres, ratios(s.VsPostgresAll), targetVsPostgres, mark(s.VsPostgres >= targetVsPostgres))
	}
	if len(s.SeededVsEmptyAll) > 0 {
		fmt.Fprintf(w, "seeded / empty req/s    %.2f×  (rounds: %s)  target ≥ %.1f×: %s   [store seeded with %d events]\n", s.SeededVsEmpty, ratios(s.SeededVsEmptyAll), targetSeededVsEmpty, mark(s.SeededVsEmpty >= targetSeededVsEmpty), o.seedEvents)
		fmt.Fprintf(w, "seeded / empty p99      %.2f×  (rounds: %s)  target ≤ %.1f×: %s\n", s.SeededP99Ratio, ratios(s.SeededP99RatioAll), targetSeededP99Ratio, mark(s.SeededP99Ratio <= targetSeededP99Ratio))
	}
	if len(s.AltSeededVsSeededAll) > 0 {
		fmt.Fprintf(w, "alt-seeded / seeded     %.2f×  (rounds: %s)\n", s.AltSeededVsSeeded, ratios(s.AltSeededVsSeededAll))
	}
	if len(s.AltVsFcauditAll) > 0 {
		fmt.Fprintf(w, "fcaudit-alt / fcaudit   %.2f×  (rounds: %s)\n", s.AltVsFcaudit, ratios(s.AltVsFcauditAll))
	}
	if slices.ContainsFunc(s.Targets, func(t targetSummary) bool { return t.Name == "fcaudit" }) {
		fmt.Fprintf(w, "fcaudit p99 (worst)     %s  target < %s: %s\n", s.FcauditP99.Round(10*time.Microsecond), targetP99, mark(s.FcauditP99 < targetP99))
	}
	fmt.Fprintf(w, "errors                  %d  target 0: %s\n", s.Errors, mark(s.Errors == 0))
}
