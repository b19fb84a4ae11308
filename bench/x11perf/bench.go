package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jezek/xgb"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// Targets: the forward against ssh -X.
const (
	imageTarget     = 1.5 // ops/s ratio on the image tests, at least
	roundTripTarget = 1.2 // round-trip time ratio, at most
)

// test is one x11perf test.
type test struct {
	flag, name string
	roundTrip  bool // report as a round trip, lower time is better
}

var allTests = []test{
	{"-getimage500", "GetImage 500x500", false},
	{"-putimage500", "PutImage 500x500", false},
	{"-prop", "GetProperty (round trip)", true},
}

// transport runs x11perf with args on the guest against the nested
// display and returns its output.
type transport struct {
	name string
	// run returns x11perf's output and the CPU time the transport's own
	// process spent (0 when there is none: direct).
	run func(ctx context.Context, args []string) (string, time.Duration, error)
}

type config struct {
	seconds, repeat, rounds int
	cpuprofile              string
	tests                   []test
	only                    []string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("x11perf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var tests, only string
	fs.IntVar(&cfg.seconds, "time", 2, "x11perf -time: seconds per repetition")
	fs.IntVar(&cfg.repeat, "repeat", 1, "x11perf -repeat: repetitions per run")
	fs.IntVar(&cfg.rounds, "rounds", 1, "rounds over all tests and transports; the median is shown")
	fs.StringVar(&tests, "tests", "getimage500,putimage500,prop", "x11perf tests, comma-separated")
	fs.StringVar(&only, "transports", "", "comma-separated subset of the transports (default all)")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of this process (the forward's side) to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, name := range strings.Split(tests, ",") {
		i := slices.IndexFunc(allTests, func(t test) bool { return t.flag == "-"+name })
		if i < 0 {
			fmt.Fprintf(stderr, "x11perf bench: unknown test %q\n", name)
			return 2
		}
		cfg.tests = append(cfg.tests, allTests[i])
	}
	if only != "" {
		cfg.only = strings.Split(only, ",")
	}
	if err := bench(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "x11perf bench: %v\n", err)
		return 1
	}
	return 0
}

// world is everything the transports share.
type world struct {
	g          *testguest.Guest
	x          *xephyr.Server
	hostAuth   string // host-side Xauthority for ssh -X (Local and Wild entries for :N)
	guestAuth  string // guest-side Xauthority with Wild entries for N and D
	c          *guest.Client
	f          *guest.Forward
	stderr     io.Writer
	cleanups   []func()
	dir        string
	cookie     xauth.Cookie
	hostname   string
	sshDefault string // cipher OpenSSH negotiates by default, for the header
}

func (w *world) close() {
	for i := len(w.cleanups) - 1; i >= 0; i-- {
		w.cleanups[i]()
	}
}

func bench(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("run as root: the test guest needs a network namespace and a user")
	}
	for _, p := range []string{"x11perf", "Xephyr", "ssh", "xauth"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: install x11-apps, xserver-xephyr, openssh-client and xauth", p)
		}
	}
	w := &world{stderr: stderr}
	defer w.close()
	if err := w.setup(ctx); err != nil {
		return err
	}

	transports := []transport{
		{"direct", w.direct},
		{"xvmview", w.forward(true)},
		{"fwd Go defaults", w.forward(false)},
		{"ssh -X", w.sshX("")},
		{"ssh -X gcm", w.sshX("aes128-gcm@openssh.com")},
	}
	if cfg.only != nil {
		transports = slices.DeleteFunc(transports, func(t transport) bool { return !slices.Contains(cfg.only, t.name) })
	}
	fmt.Fprintf(stdout, "x11perf on guest %s against Xephyr :%d (via Xvfb), GOMAXPROCS=%d, %d CPUs, x11perf -repeat %d -time %d, %d round(s)\n",
		w.g.Addr, w.x.Display, runtime.GOMAXPROCS(0), runtime.NumCPU(), cfg.repeat, cfg.seconds, cfg.rounds)
	fmt.Fprintf(stdout, "forward: display localhost:%d on the guest; ssh -X default cipher: %s\n\n", w.f.Display, w.sshDefault)

	// results[test][transport] holds one rate per round.
	results := make([][][]float64, len(cfg.tests))
	loads := make([][][]float64, len(cfg.tests)) // transport CPU / wall time
	for i := range results {
		results[i] = make([][]float64, len(transports))
		loads[i] = make([][]float64, len(transports))
	}
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for round := range cfg.rounds {
		for i, t := range cfg.tests {
			for j, tr := range transports {
				if err := ctx.Err(); err != nil {
					return err
				}
				args := []string{"-repeat", strconv.Itoa(cfg.repeat), "-time", strconv.Itoa(cfg.seconds), t.flag}
				t0 := time.Now()
				out, cpu, err := tr.run(ctx, args)
				wall := time.Since(t0)
				if err != nil {
					return fmt.Errorf("%s over %s: %w\n%s", t.name, tr.name, err, out)
				}
				rate, err := parseRate(out)
				if err != nil {
					return fmt.Errorf("%s over %s: %w", t.name, tr.name, err)
				}
				load := cpu.Seconds() / wall.Seconds()
				fmt.Fprintf(stderr, "round %d: %-26s %-12s %10.1f/s  transport CPU %.2f cores, %.1f µs/op\n",
					round+1, t.name, tr.name, rate, load, load/rate*1e6)
				results[i][j] = append(results[i][j], rate)
				loads[i][j] = append(loads[i][j], load)
			}
		}
	}
	report(stdout, cfg.tests, transports, results, loads)
	return nil
}

func (w *world) setup(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var err error
	if w.hostname, err = os.Hostname(); err != nil {
		return err
	}
	if w.dir, err = os.MkdirTemp("", "xvm-x11perf-"); err != nil {
		return err
	}
	w.cleanups = append(w.cleanups, func() { os.RemoveAll(w.dir) })

	host, err := testguest.NewXvfb(sctx, testguest.XvfbOptions{Screen: "1280x1024x24"})
	if err != nil {
		return err
	}
	w.cleanups = append(w.cleanups, func() { host.Close() })

	if w.cookie, err = xauth.NewCookie(); err != nil {
		return err
	}
	serverAuth := filepath.Join(w.dir, "server-auth")
	if err := xauth.WriteFile(serverAuth, []xauth.Entry{xauth.WildEntry(0, w.cookie)}); err != nil {
		return err
	}
	w.x, err = xephyr.Start(sctx, xephyr.Options{AuthFile: serverAuth, Screen: "1024x768x24", ListenTCP: true, Env: host.Env()})
	if err != nil {
		return err
	}
	w.cleanups = append(w.cleanups, func() { w.x.Close() })
	xgb.Logger = log.New(io.Discard, "", 0) // the held connection's end at teardown is no news
	// -terminate: hold a connection so x11perf leaving does not end Xephyr.
	hold, err := xephyr.Dial(sctx, w.x.Display, w.cookie)
	if err != nil {
		return err
	}
	w.cleanups = append(w.cleanups, func() { hold.Close() })
	w.hostAuth = filepath.Join(w.dir, "client-auth")
	if err := xauth.WriteFile(w.hostAuth, []xauth.Entry{
		xauth.LocalEntry(w.hostname, w.x.Display, w.cookie), xauth.WildEntry(w.x.Display, w.cookie),
	}); err != nil {
		return err
	}

	if w.g, err = testguest.New(sctx, testguest.Options{}); err != nil {
		return err
	}
	w.cleanups = append(w.cleanups, func() {
		if err := w.g.Close(); err != nil {
			fmt.Fprintln(w.stderr, err)
		}
	})
	tg, err := guest.Resolve(w.g.Alias, guest.Overrides{}, guest.Config{SSHConfigFile: w.g.SSHConfig, Home: w.dir})
	if err != nil {
		return err
	}
	if w.c, err = guest.Dial(sctx, tg, guest.DialOptions{NoAgent: true}); err != nil {
		return err
	}
	w.cleanups = append(w.cleanups, func() { w.c.Close() })
	if w.f, err = w.c.ForwardX(sctx, w.x.Socket(), 10, guest.ForwardOptions{}); err != nil {
		return err
	}
	w.cleanups = append(w.cleanups, func() { w.f.Close() })

	w.guestAuth = w.g.Home + "/.xvm-bench-auth"
	var numeric bytes.Buffer
	if err := xauth.WriteNumeric(&numeric, []xauth.Entry{
		xauth.WildEntry(w.x.Display, w.cookie), xauth.WildEntry(w.f.Display, w.cookie),
	}); err != nil {
		return err
	}
	cmd, err := guest.Command(nil, []string{"xauth", "-q", "-f", w.guestAuth, "nmerge", "-"})
	if err != nil {
		return err
	}
	if err := w.c.Run(sctx, cmd, &numeric, nil, nil); err != nil {
		return fmt.Errorf("write guest Xauthority: %w", err)
	}
	w.sshDefault = w.opensshCipher(sctx)
	return nil
}

// direct runs x11perf inside the guest's namespace against Xephyr's TCP
// listener on the host end of the veth.
func (w *world) direct(ctx context.Context, args []string) (string, time.Duration, error) {
	cmd := w.g.Command(ctx, append([]string{"x11perf"}, args...)...)
	cmd.Env = append(cmd.Env, "DISPLAY="+w.g.HostAddr+":"+strconv.Itoa(w.x.Display), "XAUTHORITY="+w.guestAuth)
	out, err := cmd.CombinedOutput()
	return string(out), 0, err
}

// forward runs x11perf as a session on the connection that carries the
// forward, with the launcher's process settings (guest.TuneProcess) when
// tuned, else with Go's defaults (GOMAXPROCS = CPUs, GOGC=100).
func (w *world) forward(tuned bool) func(context.Context, []string) (string, time.Duration, error) {
	return func(ctx context.Context, args []string) (string, time.Duration, error) {
		if tuned {
			defer guest.TuneProcess()()
		}
		cmd, err := guest.Command([]string{"DISPLAY=localhost:" + strconv.Itoa(w.f.Display), "XAUTHORITY=" + w.guestAuth},
			append([]string{"x11perf"}, args...))
		if err != nil {
			return "", 0, err
		}
		var out bytes.Buffer
		before := selfCPU()
		err = w.c.Run(ctx, cmd, nil, &out, &out)
		return out.String(), selfCPU() - before, err
	}
}

// sshX runs x11perf through OpenSSH's X11 forwarding, trusted as Debian's
// ssh -X is, with cipher ("" = OpenSSH's default).
func (w *world) sshX(cipher string) func(context.Context, []string) (string, time.Duration, error) {
	return func(ctx context.Context, args []string) (string, time.Duration, error) {
		argv := []string{"-F", w.g.SSHConfig, "-o", "BatchMode=yes", "-X", "-o", "ForwardX11Trusted=yes"}
		if cipher != "" {
			argv = append(argv, "-c", cipher)
		}
		argv = append(append(argv, w.g.Alias, "x11perf"), args...)
		cmd := exec.CommandContext(ctx, "ssh", argv...)
		cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool {
			return strings.HasPrefix(e, "DISPLAY=") || strings.HasPrefix(e, "XAUTHORITY=") || strings.HasPrefix(e, "SSH_AUTH_SOCK=")
		}), "DISPLAY=:"+strconv.Itoa(w.x.Display), "XAUTHORITY="+w.hostAuth)
		out, err := cmd.CombinedOutput()
		var cpu time.Duration
		if cmd.ProcessState != nil {
			cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		return string(out), cpu, err
	}
}

// selfCPU is this process's user and system time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// opensshCipher asks ssh which cipher it negotiates with the guest.
func (w *world) opensshCipher(ctx context.Context) string {
	cmd := exec.CommandContext(ctx, "ssh", "-F", w.g.SSHConfig, "-o", "BatchMode=yes", "-v", w.g.Alias, "true")
	out, _ := cmd.CombinedOutput()
	if m := regexp.MustCompile(`kex: server->client cipher: (\S+)`).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return "unknown"
}

var rateRE = regexp.MustCompile(`\(\s*([0-9.]+)/sec\):`)

// parseRate returns the rate of x11perf's last result line, the summary
// when -repeat is more than 1.
func parseRate(out string) (float64, error) {
	m := rateRE.FindAllStringSubmatch(out, -1)
	if m == nil {
		return 0, fmt.Errorf("no result in x11perf output:\n%s", out)
	}
	return strconv.ParseFloat(m[len(m)-1][1], 64)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(stdout io.Writer, tests []test, trs []transport, results, loads [][][]float64) {
	col := func(name string) int { return slices.IndexFunc(trs, func(t transport) bool { return t.name == name }) }
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "ops/s\t")
	for _, tr := range trs {
		fmt.Fprintf(tw, "%s\t", tr.name)
	}
	fmt.Fprint(tw, "xvmview/ssh -X\txvmview/direct\t\n")
	for i, t := range tests {
		fmt.Fprintf(tw, "%s\t", t.name)
		for j := range trs {
			fmt.Fprintf(tw, "%.1f\t", median(results[i][j]))
		}
		ratio := func(a, b string) string {
			ia, ib := col(a), col(b)
			if ia < 0 || ib < 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fx", median(results[i][ia])/median(results[i][ib]))
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", ratio("xvmview", "ssh -X"), ratio("xvmview", "direct"))
	}
	tw.Flush()

	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "CPU of the transport's own process (this one for xvmview and fwd, ssh for ssh -X) per op, in µs (cores in use / rate):")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "µs/op\t")
	for _, tr := range trs {
		fmt.Fprintf(tw, "%s\t", tr.name)
	}
	fmt.Fprint(tw, "\n")
	for i, t := range tests {
		fmt.Fprintf(tw, "%s\t", t.name)
		for j := range trs {
			fmt.Fprintf(tw, "%.1f\t", median(loads[i][j])/median(results[i][j])*1e6)
		}
		fmt.Fprint(tw, "\n")
	}
	tw.Flush()

	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "round-trip times (1/rate):")
	for i, t := range tests {
		if !t.roundTrip {
			continue
		}
		for j, tr := range trs {
			fmt.Fprintf(stdout, "  %-16s %.3f ms\n", tr.name, 1000/median(results[i][j]))
		}
	}
	fmt.Fprintln(stdout)
	fs, sx := col("xvmview"), col("ssh -X")
	if fs < 0 || sx < 0 {
		return
	}
	for i, t := range tests {
		r := median(results[i][fs]) / median(results[i][sx])
		if t.roundTrip {
			verdict := "met"
			if 1/r > roundTripTarget {
				verdict = "MISSED"
			}
			fmt.Fprintf(stdout, "target %s: round trip within %.1fx of ssh -X: %.2fx, %s\n", t.name, roundTripTarget, 1/r, verdict)
			continue
		}
		verdict := "met"
		if r < imageTarget {
			verdict = "MISSED"
		}
		fmt.Fprintf(stdout, "target %s: at least %.1fx ssh -X: %.2fx, %s\n", t.name, imageTarget, r, verdict)
	}
}
