package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jezek/xgb"

	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/testvm"
)

// target is the ratio of medians xvmview/script the launcher aims for.
const target = 0.40

// apps are the guest apps the bench can launch: the same argv on both sides.
// Each gets a position so twm's default config places it without a click.
var apps = map[string][]string{
	"xterm": {"xterm", "-geometry", "40x10+20+20"},
	"xeyes": {"xeyes", "-geometry", "100x100+20+20"},
}

type config struct {
	runs       int
	xvmview    string
	app        []string
	timeout    time.Duration
	poll       time.Duration
	transports []string // xvmview profile transports to measure; "" = the profile default
	showScript bool
	vmRuns     int // > 0: also measure with a real VM (vm.go)
}

// launcher is one way of starting the app on the nested display.
type launcher interface {
	name() string
	// once starts one session, returns the time from launch to the app's
	// first window mapped, and ends the session completely again. out
	// receives what the launcher wrote to stderr.
	once(ctx context.Context, verbose bool) (d time.Duration, out string, err error)
	// memory is the launcher's memory (launcherMemory) at the first
	// window of the last run once measured.
	memory() memUse
}

// run is the whole bench; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("startup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var app string
	fs.IntVar(&cfg.runs, "n", 7, "measured runs per launcher (at least 5 for a meaningful median)")
	fs.StringVar(&cfg.xvmview, "xvmview", "./xvmview", "path of the xvmview binary to measure")
	fs.StringVar(&app, "app", "xterm", "guest app to start: xterm or xeyes")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "give up on one run after this long")
	fs.DurationVar(&cfg.poll, "poll", 5*time.Millisecond, "how often to look for the app's window")
	transports := fs.String("transports", "tcp,ssh", "xvmview transports to measure, comma-separated: tcp (as the script), ssh, default (the profile default)")
	fs.BoolVar(&cfg.showScript, "show-script", false, "print the generated baseline script (as run for display :40) before measuring")
	fs.IntVar(&cfg.vmRuns, "vm", 0, "also measure with a libvirt test VM (internal/testvm): the ssh profile naming the running VM, and this many launches with the VM off next to its boot time")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "startup: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.runs < 1 {
		fmt.Fprintln(stderr, "startup: -n must be at least 1")
		return 2
	}
	if cfg.runs < 5 {
		fmt.Fprintf(stderr, "startup: warning: -n %d: with fewer than 5 runs each the medians say little\n", cfg.runs)
	}
	argv, ok := apps[app]
	if !ok {
		fmt.Fprintf(stderr, "startup: unknown -app %q; use xterm or xeyes\n", app)
		return 2
	}
	cfg.app = argv
	for t := range strings.SplitSeq(*transports, ",") {
		switch t = strings.TrimSpace(t); t {
		case "tcp", "ssh":
			cfg.transports = append(cfg.transports, t)
		case "default":
			cfg.transports = append(cfg.transports, "")
		default:
			fmt.Fprintf(stderr, "startup: unknown transport %q in -transports; use tcp, ssh or default\n", t)
			return 2
		}
	}
	// xgb logs a broken connection itself; the poll then reconnects.
	xgb.Logger = log.New(stderr, "startup: xgb: ", 0)
	if err := bench(ctx, cfg, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "startup: interrupted; the guest, the displays and the work directory are removed")
			return 130
		}
		fmt.Fprintf(stderr, "startup: error: %v\n", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the bench creates a network namespace, a user and an sshd: run it as root")
	}
	bin, err := filepath.Abs(cfg.xvmview)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return fmt.Errorf("no xvmview binary at %s: build it with `go build -o xvmview ./cmd/xvmview` or pass -xvmview PATH", bin)
	}
	cfg.xvmview = bin

	work, err := os.MkdirTemp("", "xvmview-bench-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()

	setupCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	x, err := testguest.NewXvfb(setupCtx, testguest.XvfbOptions{})
	if err != nil {
		return fmt.Errorf("start the host display: %w", err)
	}
	defer func() {
		if cerr := x.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	g, err := testguest.New(setupCtx, testguest.Options{})
	if err != nil {
		return fmt.Errorf("create the test guest: %w", err)
	}
	defer func() {
		if cerr := g.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	fmt.Fprintf(stderr, "startup: guest %s@%s (netns %s), host display %s, app %q, %d runs each\n",
		g.User, g.Addr, g.Namespace, x.Display, strings.Join(cfg.app, " "), cfg.runs)

	script, err := newScript(cfg, g, x, filepath.Join(work, "script"), stderr)
	if err != nil {
		return err
	}
	if cfg.showScript {
		fmt.Fprintf(stderr, "startup: the baseline script, as run for display :40:\n%s\n", indent(strings.TrimSpace(script.text(40, false))))
	}
	ls := []launcher{script}
	for _, t := range cfg.transports {
		v, err := newXvmview(cfg, g, x, filepath.Join(work, "xvmview-"+cmp.Or(t, "default")), t)
		if err != nil {
			return err
		}
		ls = append(ls, v)
	}
	vmAt := -1 // the launcher whose profile names the running VM
	var tv *testvm.VM
	if cfg.vmRuns > 0 {
		vctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
		tv, err = newTestVM(vctx, stderr)
		cancel()
		if err != nil {
			return fmt.Errorf("the test VM: %w", err)
		}
		defer func() {
			if cerr := tv.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}()
		v, err := vmLauncher(cfg, g, x, work, tv)
		if err != nil {
			return err
		}
		vmAt = len(ls)
		ls = append(ls, v)
	}
	times := make([][]time.Duration, len(ls))
	mems := make([][]memUse, len(ls))
	failed := make([]error, len(ls)) // a launcher that failed attempts times in a row is skipped from then on
	retried := make([]int, len(ls))
	var problems []error // measured runs that did not end cleanly

	// one runs launcher i once; a failed run is retried (other programs on
	// the machine may interfere, e.g. by taking the display number), and the
	// launcher is given up after attempts failures in a row. Failures print
	// what the launcher said.
	const attempts = 3
	one := func(i int, label string, verbose bool) (time.Duration, string, error) {
		if failed[i] != nil {
			return 0, "", failed[i]
		}
		var err error
		for a := 1; a <= attempts && ctx.Err() == nil; a++ {
			var d time.Duration
			var out string
			d, out, err = ls[i].once(ctx, verbose)
			var le *leftoverError
			if d > 0 && errors.As(err, &le) {
				fmt.Fprintf(stderr, "startup: %-16s %s: %s, but %v\n", ls[i].name(), label, ms(d), err)
				problems = append(problems, fmt.Errorf("%s %s: %w", ls[i].name(), label, err))
				return d, out, nil
			}
			if err == nil {
				fmt.Fprintf(stderr, "startup: %-16s %s: %s\n", ls[i].name(), label, ms(d))
				return d, out, nil
			}
			fmt.Fprintf(stderr, "startup: %-16s %s: FAILED (attempt %d of %d): %v\n", ls[i].name(), label, a, attempts, err)
			if s := strings.TrimSpace(out); s != "" {
				fmt.Fprintf(stderr, "startup: %s said:\n%s\n", ls[i].name(), indent(s))
			}
			retried[i]++
		}
		if ctx.Err() == nil {
			failed[i] = fmt.Errorf("%s failed %d times in a row, last: %w", ls[i].name(), attempts, err)
			fmt.Fprintf(stderr, "startup: giving up on %s\n", ls[i].name())
		}
		return 0, "", err
	}
	allFailed := func() bool {
		for _, f := range failed {
			if f == nil {
				return false
			}
		}
		return true
	}

	// Warm-up: page cache, sshd's first fork, fonts. Not counted.
	for i := range ls {
		_, _, _ = one(i, "warm-up", false)
	}
	// Interleaved, rotating which goes first, so drift and caches hit all
	// alike.
	for r := 0; r < cfg.runs && ctx.Err() == nil && !allFailed(); r++ {
		for k := range ls {
			i := (r + k) % len(ls)
			if d, _, err := one(i, fmt.Sprintf("run %d/%d", r+1, cfg.runs), false); err == nil {
				times[i] = append(times[i], d)
				mems[i] = append(mems[i], ls[i].memory())
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// One more run of each, traced, to show where the time goes.
	phases := make([][]string, len(ls))
	phaseTotal := make([]time.Duration, len(ls))
	for i := range ls {
		if d, out, err := one(i, "traced", true); err == nil {
			phaseTotal[i], phases[i] = d, phaseLines(out)
		}
	}

	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "launch to first app window mapped (%s on the guest, twm, Xephyr 1280x1024; bench polls every %s)\n",
		cfg.app[0], cfg.poll)
	fmt.Fprintf(stdout, "%-18s %4s  %8s  %8s  %8s\n", "launcher", "runs", "median", "min", "max")
	meds := make([]time.Duration, len(ls))
	for i, l := range ls {
		if len(times[i]) == 0 {
			fmt.Fprintf(stdout, "%-18s %4d  %8s  %8s  %8s\n", l.name(), 0, "-", "-", "-")
			continue
		}
		med, lo, hi := stats(times[i])
		meds[i] = med
		fmt.Fprintf(stdout, "%-18s %4d  %8s  %8s  %8s\n", l.name(), len(times[i]), ms(med), ms(lo), ms(hi))
	}
	for i := 1; i < len(ls); i++ {
		if meds[0] == 0 || meds[i] == 0 {
			continue
		}
		ratio := float64(meds[i]) / float64(meds[0])
		verdict := "met"
		if ratio > target {
			verdict = "NOT met"
		}
		fmt.Fprintf(stdout, "ratio %s/script: %.3fx (target <= %.2fx: %s)\n", ls[i].name(), ratio, target, verdict)
	}
	if vmAt > 0 {
		for i, l := range ls {
			if l.name() == "xvmview (ssh)" && meds[i] > 0 && meds[vmAt] > 0 {
				vmVerdict(stdout, meds[vmAt], meds[i], phases[vmAt])
			}
		}
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "memory of the launcher's own host processes at the first window (Xephyr left out; median):")
	fmt.Fprintf(stdout, "%-18s %5s  %8s  %8s\n", "launcher", "procs", "RSS", "PSS")
	for i, l := range ls {
		if len(mems[i]) == 0 {
			continue
		}
		m := medianMem(mems[i])
		fmt.Fprintf(stdout, "%-18s %5d  %8s  %8s\n", l.name(), m.procs, mib(m.rss), mib(m.pss))
	}
	for i, l := range ls {
		if len(phases[i]) == 0 {
			continue
		}
		how := "with xtrace (times since launch"
		if i > 0 {
			how = "with --verbose (times since xvmview started"
		}
		fmt.Fprintf(stdout, "\none %s run %s; the bench saw the first window at %s):\n", l.name(), how, ms(phaseTotal[i]))
		for _, p := range phases[i] {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
	}
	for i, l := range ls {
		if retried[i] > 0 {
			fmt.Fprintf(stdout, "%s: %d failed attempt(s), retried (see above)\n", l.name(), retried[i])
		}
	}
	if tv != nil {
		if err := vmOff(ctx, cfg, g, x, work, tv, cfg.vmRuns, stdout, stderr); err != nil {
			problems = append(problems, fmt.Errorf("with the VM off: %w", err))
		}
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "problem: %v\n", p)
	}
	return errors.Join(append(problems, failed...)...)
}

// phaseRE matches xvmview's --verbose lines, e.g. "xvmview:   0.152s Xephyr
// ready on :3", and the script's traced lines (traceLines).
var phaseRE = regexp.MustCompile(`^(xvmview|script):\s+\d+\.\d+s `)

func phaseLines(out string) []string {
	var ps []string
	for l := range strings.SplitSeq(out, "\n") {
		if phaseRE.MatchString(l) {
			ps = append(ps, l)
		}
	}
	return ps
}

// stats returns the median, minimum and maximum; the median of an even
// count is the mean of the middle two.
func stats(ds []time.Duration) (med, lo, hi time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

// medianMem takes the median of each field on its own.
func medianMem(ms []memUse) memUse {
	med := func(f func(memUse) int64) int64 {
		v := make([]int64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return memUse{
		rss:   med(func(m memUse) int64 { return m.rss }),
		pss:   med(func(m memUse) int64 { return m.pss }),
		procs: int(med(func(m memUse) int64 { return int64(m.procs) })),
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
