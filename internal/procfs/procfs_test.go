package procfs

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	rest := " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 1 2 3"
	tests := []struct {
		name    string
		in      string
		want    Stat
		wantErr bool
	}{
		{"plain", "123 (sleep) S 1 123 123" + rest, Stat{PID: 123, Comm: "sleep", State: 'S', PPID: 1, PGID: 123, StartTicks: 4242}, false},
		{"comm with spaces and parens", "7 (a) b) (c) Z 3 4 4" + rest, Stat{PID: 7, Comm: "a) b) (c", State: 'Z', PPID: 3, PGID: 4, StartTicks: 4242}, false},
		{"too short", "7 (x) S 1 2", Stat{}, true},
		{"no comm", "7 S 1 2 3" + rest, Stat{}, true},
		{"bad state", "7 (x) SS 1 2 3" + rest, Stat{}, true},
		{"state not a letter", "7 (x) \x00 1 2 3" + rest, Stat{}, true},
		{"bad ppid", "7 (x) S one 2 3" + rest, Stat{}, true},
		{"empty", "", Stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseStat = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("123 (sleep) S 1 123 123 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 1 2 3"))
	f.Add([]byte("7 (a) b) Z 3 4 4 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err == nil && (s.State == 0 || strings.ContainsAny(string(s.State), " \n")) {
			t.Errorf("ParseStat(%q) = %+v: a state that is no state", b, s)
		}
	})
}

// TestSelf: what /proc says about this process and a child it starts, ends
// and reaps.
func TestSelf(t *testing.T) {
	me := os.Getpid()
	st, err := ReadStat(me)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != me || st.PPID != os.Getppid() || st.Gone() || st.StartTicks == 0 || st.PGID <= 0 {
		t.Errorf("ReadStat(self) = %+v", st)
	}
	if !Alive(me) || Alive(0) || Alive(-1) {
		t.Error("Alive: wrong for self, 0 or -1")
	}
	argv, err := Cmdline(me)
	if err != nil || len(argv) == 0 || argv[0] != os.Args[0] {
		t.Errorf("Cmdline(self) = %q, %v; want to start with %q", argv, err, os.Args[0])
	}
	if exe, err := Exe(me); err != nil || exe == "" {
		t.Errorf("Exe(self) = %q, %v", exe, err)
	}
	if r, e, err := UIDs(me); err != nil || r != os.Getuid() || e != os.Geteuid() {
		t.Errorf("UIDs(self) = %d %d %v, want %d %d", r, e, err, os.Getuid(), os.Geteuid())
	}
	if env, err := Environ(me); err != nil || len(env) == 0 || env[0] != os.Environ()[0] {
		t.Errorf("Environ(self) = %d entries, %v; want to start with %q", len(env), err, os.Environ()[0])
	}
	if v, err := StatusField(me, "Pid"); err != nil || v != strconv.Itoa(me) {
		t.Errorf("StatusField(self, Pid) = %q, %v", v, err)
	}
	if _, err := StatusField(me, "NoSuchField"); err == nil {
		t.Error("StatusField found a field that does not exist")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	soft, hard, err := Limit(me, "Max open files")
	if err != nil || soft != strconv.FormatUint(lim.Cur, 10) || (hard != strconv.FormatUint(lim.Max, 10) && hard != "unlimited") {
		t.Errorf("Limit(self, Max open files) = %q %q %v, want %d %d", soft, hard, err, lim.Cur, lim.Max)
	}
	if ino, err := NetNS(me); err != nil || ino == 0 {
		t.Errorf("NetNS(self) = %d, %v", ino, err)
	}
	rss, pss, err := Memory(me)
	if err != nil || rss <= 0 || pss <= 0 {
		t.Errorf("Memory(self) = %d %d %v", rss, pss, err)
	}
	if peak, err := PeakRSS(me); err != nil || peak < rss/2 {
		t.Errorf("PeakRSS(self) = %d %v, want about the RSS %d or more", peak, err, rss)
	}
	pids, err := PIDs()
	if err != nil || !slices.Contains(pids, me) || !slices.IsSorted(pids) {
		t.Errorf("PIDs() does not hold this process in order (err %v)", err)
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	child := cmd.Process.Pid
	if !slices.Contains(Children(me), child) {
		t.Errorf("Children(self) = %v lacks %d", Children(me), child)
	}
	_ = cmd.Process.Kill()
	// Killed but not reaped: a zombie, which has ended.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := ReadStat(child)
		if err != nil {
			t.Fatal(err)
		}
		if st.Gone() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("killed pid %d still in state %c", child, st.State)
		}
		time.Sleep(time.Millisecond)
	}
	if Alive(child) || slices.Contains(Children(me), child) {
		t.Errorf("a zombie counts as alive")
	}
	_ = cmd.Wait()
	if _, err := ReadStat(child); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadStat of a reaped pid: %v, want fs.ErrNotExist", err)
	}
}

func TestUnixListening(t *testing.T) {
	table := []byte(`Num       RefCount Protocol Flags    Type St Inode Path
00000000a6c91069: 00000002 00000000 00010000 0001 01 3555199 /tmp/.X11-unix/X0
00000000981b5abb: 00000003 00000000 00000000 0001 03 3525392 /tmp/.X11-unix/X1
00000000981b5abc: 00000003 00000000 00000000 0001 03 3525393
00000000981b5abd: 00000002 00000000 00010000 0001 01 3525394 @/tmp/.X11-unix/X2
`)
	for path, want := range map[string]bool{"/tmp/.X11-unix/X0": true, "/tmp/.X11-unix/X1": false, "/tmp/.X11-unix/X2": false, "@/tmp/.X11-unix/X2": true, "/nope": false} {
		if got := unixListening(table, path); got != want {
			t.Errorf("unixListening(%q) = %v, want %v", path, got, want)
		}
	}
	// A real one.
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := UnixListening(path); !ok || err != nil {
		t.Errorf("UnixListening(%s) = %v, %v while it listens", path, ok, err)
	}
	ln.Close()
	if ok, err := UnixListening(path); ok || err != nil {
		t.Errorf("UnixListening(%s) = %v, %v after Close", path, ok, err)
	}
}
