package main

import (
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

func TestStats(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range v {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	for _, tc := range []struct {
		name        string
		in          []time.Duration
		med, lo, hi time.Duration
	}{
		{"one", ms(5), 5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond},
		{"odd unsorted", ms(30, 10, 20), 20 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond},
		{"even takes the mean of the middle two", ms(40, 10, 30, 20), 25 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			med, lo, hi := stats(tc.in)
			if med != tc.med || lo != tc.lo || hi != tc.hi {
				t.Errorf("stats(%v) = %v, %v, %v; want %v, %v, %v", tc.in, med, lo, hi, tc.med, tc.lo, tc.hi)
			}
		})
	}
}

func TestTraceLines(t *testing.T) {
	start := time.Unix(1000, 0)
	const cookie = "0123456789abcdef0123456789abcdef"
	out := "+ 1000.250000 ssh -F cfg alias 'echo \"add 10.0.0.1:40 . " + cookie + "\" | xauth'\n" +
		"++ 1000.002000 mcookie\n" +
		"xauth:  file /x does not exist\n" +
		"+ notatime echo\n"
	got := traceLines(out, start)
	for _, tc := range []struct {
		name, want string
	}{
		{"time since start and command", "script:   0.250s ssh -F cfg alias"},
		{"nesting kept", "script:   0.002s +mcookie"},
		{"cookie redacted", ". <cookie>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(got, tc.want) {
				t.Errorf("traceLines() = %q; want it to contain %q", got, tc.want)
			}
		})
	}
	t.Run("no cookie, no untraced lines", func(t *testing.T) {
		if strings.Contains(got, cookie) || strings.Contains(got, "does not exist") || strings.Contains(got, "notatime") {
			t.Errorf("traceLines() = %q", got)
		}
	})
}

func TestPhaseLines(t *testing.T) {
	out := "xvmview:   0.052s Xephyr ready on :1\nxvmview: transport tcp: in clear\nscript:   0.205s Xephyr :40\nother\n"
	got := phaseLines(out)
	want := []string{"xvmview:   0.052s Xephyr ready on :1", "script:   0.205s Xephyr :40"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("phaseLines() = %q; want %q", got, want)
	}
}

// TestScriptShape checks that the baseline keeps the replaced script's
// shape: two ssh logins, the cookie on the first one's command line, Xephyr
// with the same options plus -listen tcp, twm and the app in one login.
func TestScriptShape(t *testing.T) {
	s := &script{
		cfg:      config{app: apps["xterm"]},
		g:        &testguest.Guest{HostAddr: "10.213.7.1", Alias: "xvt-7", SSHConfig: "/tmp/xvt-7/ssh_config"},
		mcookie:  "mcookie",
		xauthRel: ".Xauth-Xephyr",
	}
	text := s.text(41, false)
	for _, tc := range []struct{ name, want string }{
		{"cookie", "COOKIE=`mcookie`; FILE=~/.Xauth-Xephyr; rm -f $FILE\n"},
		{"first login hands over the cookie", `$SSH "echo \"add 10.213.7.1:41 . $COOKIE\" | xauth"` + "\n"},
		{"local file", `echo "add :41 . $COOKIE" | xauth -f $FILE` + "\n"},
		{"Xephyr", "Xephyr :41 -auth $FILE -reset -terminate -listen tcp -screen 1280x1024 $* &\n"},
		{"second login runs twm and the app", `$SSH "DISPLAY=10.213.7.1:41 twm & DISPLAY=10.213.7.1:41 xterm -geometry 40x10+20+20"` + "\n"},
		{"ssh config", `SSH="ssh -F /tmp/xvt-7/ssh_config xvt-7"`},
		{"wait", "\nwait\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(text, tc.want) {
				t.Errorf("script text:\n%s\nwant it to contain %q", text, tc.want)
			}
		})
	}
	if got := strings.Count(text, "$SSH "); got != 2 {
		t.Errorf("script logs in %d times; want 2", got)
	}
	if strings.Contains(text, "set -x") {
		t.Errorf("untraced script turns on xtrace:\n%s", text)
	}
	if !strings.Contains(s.text(41, true), "set -x") {
		t.Error("traced script does not turn on xtrace")
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"xterm", "xterm"},
		{"40x10+20+20", "40x10+20+20"},
		{"/tmp/a b", "'/tmp/a b'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := shellQuote(tc.in); got != tc.want {
				t.Errorf("shellQuote(%q) = %q; want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestVMStep(t *testing.T) {
	d, ok := vmStep([]string{
		"xvmview:   0.001s runtime directory /run/x/abc",
		"xvmview:   0.004s domain web is running",
		"xvmview:   0.060s Xephyr ready on :1",
	})
	if !ok || d < 2900*time.Microsecond || d > 3100*time.Microsecond {
		t.Errorf("vmStep = %v, %v; want 3ms", d, ok)
	}
	if _, ok := vmStep([]string{"xvmview:   0.001s runtime directory /run/x/abc"}); ok {
		t.Error("vmStep without the VM phase reported a step")
	}
}
