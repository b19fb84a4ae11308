// Command ab checks a change to the X forward for a loss of throughput:
// it builds bench/x11perf at a base revision and from the working tree,
// runs the two alternately (A B B A ...) against the same kind of test
// guest, and prints for each x11perf test the ratio of xvmview's ops/s
// after/before with a 95% bootstrap interval. One run of the bench against
// another differs by more than the 5% a change may cost (the machine's
// noise), so the check needs many rounds on both sides, interleaved. Run it
// as root from the repository root:
//
//	go run ./bench/ab -base 7831000^ -runs 8
//
// Each run is `x11perf -transports xvmview -rounds R -tests T`. A run's
// rounds are averaged into one sample, and the interval resamples whole
// runs: the noise between runs is larger than within one. It is a
// measurement: the exit status is 1 only when a build or a run failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("base", "", "the revision to compare the working tree against (required)")
	runs := fs.Int("runs", 8, "runs of each side, alternated")
	rounds := fs.Int("rounds", 5, "x11perf bench rounds per run")
	tests := fs.String("tests", "getimage500,putimage500,prop", "x11perf tests")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *base == "" || *runs < 1 || *rounds < 1 {
		fmt.Fprintln(stderr, "ab: -base REV is required; -runs and -rounds at least 1")
		return 2
	}
	if err := ab(ctx, *base, *runs, *rounds, *tests, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ab: %v\n", err)
		return 1
	}
	return 0
}

func ab(ctx context.Context, base string, runs, perRun int, tests string, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "xvm-ab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	before, after := filepath.Join(dir, "before"), filepath.Join(dir, "after")
	if err := buildAt(ctx, base, dir, before, stderr); err != nil {
		return err
	}
	if err := build(ctx, ".", after, stderr); err != nil {
		return err
	}
	samples := map[string]map[string][]float64{"before": {}, "after": {}} // per run, the mean of its rounds
	rounds := map[string]map[string]int{"before": {}, "after": {}}
	bins := map[string]string{"before": before, "after": after}
	for i := range runs {
		order := []string{"before", "after"}
		if i%2 == 1 {
			order = []string{"after", "before"}
		}
		for _, side := range order {
			cmd := exec.CommandContext(ctx, bins[side], "-transports", "xvmview", "-tests", tests, "-rounds", strconv.Itoa(perRun))
			// On an interrupt the bench tears down its test guest, Xephyr
			// and Xvfb: SIGTERM, not CommandContext's SIGKILL.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = time.Minute
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("run %d (%s): %w\n%s", i+1, side, err, out)
			}
			got := parseRounds(string(out))
			if len(got) == 0 {
				return fmt.Errorf("run %d (%s): no rounds in its output:\n%s", i+1, side, out)
			}
			for test, v := range got {
				// One sample per run: the noise between runs is larger
				// than between the rounds of one run.
				samples[side][test] = append(samples[side][test], mean(v))
				rounds[side][test] += len(v)
			}
			fmt.Fprintf(stderr, "run %d/%d %s done\n", i+1, runs, side)
		}
	}
	fmt.Fprintf(stdout, "xvmview ops/s, %s (before) against the working tree (after), %d runs of %d rounds each, interleaved;\n"+
		"the interval resamples whole runs\n\n", base, runs, perRun)
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "test\truns\trounds\tbefore\tafter\tafter/before mean\t95% interval\tmedian ratio\t")
	var names []string
	for _, side := range []string{"before", "after"} {
		for name := range samples[side] {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range names {
		b, a := samples["before"][name], samples["after"][name]
		if len(b) == 0 || len(a) == 0 {
			fmt.Fprintf(tw, "%s\t%d/%d\t\t\t\tonly on one side\t\t\t\n", name, len(b), len(a))
			continue
		}
		s := compare(b, a, rng)
		fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\t%.1f\t%.1f\t%.3f\t%.3f .. %.3f\t%.3f\t\n", name, len(b), len(a),
			rounds["before"][name], rounds["after"][name], mean(b), mean(a), s.ratio, s.lo, s.hi, s.median)
	}
	return tw.Flush()
}

// buildAt builds bench/x11perf as of rev into out, from a worktree in dir.
func buildAt(ctx context.Context, rev, dir, out string, stderr io.Writer) error {
	wt := filepath.Join(dir, "src")
	if b, err := exec.CommandContext(ctx, "git", "worktree", "add", "--detach", wt, rev).CombinedOutput(); err != nil {
		return fmt.Errorf("git worktree add %s: %w: %s", rev, err, b)
	}
	defer func() {
		if b, err := exec.Command("git", "worktree", "remove", "--force", wt).CombinedOutput(); err != nil {
			fmt.Fprintf(stderr, "ab: git worktree remove %s: %v: %s\n", wt, err, b)
		}
		_ = exec.Command("git", "worktree", "prune").Run()
	}()
	return build(ctx, wt, out, stderr)
}

func build(ctx context.Context, src, out string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./bench/x11perf")
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build bench/x11perf in %s: %w", src, err)
	}
	return nil
}

// roundLine is the bench's line for one round of one test over one
// transport (on its stderr).
var roundLine = regexp.MustCompile(`^round \d+: (.+?)\s+xvmview\s+([0-9.]+)/s`)

// parseRounds returns xvmview's ops/s per test from the bench's output.
func parseRounds(out string) map[string][]float64 {
	got := map[string][]float64{}
	for _, line := range strings.Split(out, "\n") {
		m := roundLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		got[m[1]] = append(got[m[1]], v)
	}
	return got
}

type comparison struct {
	ratio, lo, hi, median float64
}

// compare returns after/before of the means of the samples (one per run)
// with a 95% bootstrap interval (10,000 resamples) and the ratio of the
// medians.
func compare(before, after []float64, rng *rand.Rand) comparison {
	const n = 10000
	rs := make([]float64, n)
	rb, ra := make([]float64, len(before)), make([]float64, len(after))
	for i := range rs {
		for j := range rb {
			rb[j] = before[rng.IntN(len(before))]
		}
		for j := range ra {
			ra[j] = after[rng.IntN(len(after))]
		}
		rs[i] = mean(ra) / mean(rb)
	}
	slices.Sort(rs)
	return comparison{
		ratio:  mean(after) / mean(before),
		lo:     rs[n*25/1000],
		hi:     rs[n*975/1000],
		median: median(after) / median(before),
	}
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
