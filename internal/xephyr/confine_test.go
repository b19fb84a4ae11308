package xephyr

import (
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
	"github.com/xvmview/xvmview/internal/procfs"
)

func TestConfinedEnv(t *testing.T) {
	tests := []struct {
		name     string
		env, out []string
	}{
		{"cookie file", []string{"PATH=/bin", "SSH_AUTH_SOCK=/tmp/a", "DISPLAY=:0", "HOME=/home/a", "XAUTHORITY=/x", "DBUS_SESSION_BUS_ADDRESS=unix:path=/b"},
			[]string{"DISPLAY=:0", "XAUTHORITY=/x"}},
		{"no XAUTHORITY: HOME for ~/.Xauthority", []string{"DISPLAY=:1", "HOME=/home/a", "GNUPGHOME=/g"}, []string{"DISPLAY=:1", "HOME=/home/a"}},
		{"last value wins", []string{"DISPLAY=:1", "DISPLAY=:2", "XAUTHORITY=/x", "XAUTHLOCALHOSTNAME=box"}, []string{"DISPLAY=:2", "XAUTHORITY=/x", "XAUTHLOCALHOSTNAME=box"}},
		{"nothing", []string{"PATH=/bin"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := confinedEnv(tc.env); !slices.Equal(got, tc.out) {
				t.Errorf("confinedEnv(%q) = %q, want %q", tc.env, got, tc.out)
			}
		})
	}
}

// procField is procfs.StatusField, failing the test on an error.
func procField(t *testing.T, pid int, name string) string {
	t.Helper()
	v, err := procfs.StatusField(pid, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestStartConfined: a real Xephyr started by Start gets only what opens the
// host display in its environment, runs with no_new_privs and with the
// memory limit, while the launcher's own later children get none of it.
func TestStartConfined(t *testing.T) {
	host := startXvfb(t, "1024x768x24", true)
	env := append(host.Env(), "SSH_AUTH_SOCK=/tmp/ssh-agent.sock", "HOME=/root", "LANG=C.UTF-8", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/bus", "SECRET=hunter2")
	const limit = 200 << 20
	s, cookie := startXephyr(t, host, Options{Screen: "640x480x24", Env: env, MemoryLimit: limit})
	conn, err := Dial(testCtx(t), s.Display, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roundTrip(t, conn) // it reached the host display with this environment
	for ext, want := range map[string]bool{"XVideo": false, "XTEST": true, "RENDER": true} {
		r, err := xproto.QueryExtension(conn, uint16(len(ext)), ext).Reply()
		if err != nil {
			t.Fatal(err)
		}
		if r.Present != want {
			t.Errorf("extension %s present = %v, want %v", ext, r.Present, want)
		}
	}

	got, err := procfs.Environ(s.PID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DISPLAY=" + host.Display, "XAUTHORITY=" + host.Xauthority}
	if !slices.Equal(got, want) {
		t.Errorf("Xephyr's environment is %q, want exactly %q", got, want)
	}
	if v := procField(t, s.PID, "NoNewPrivs"); v != "1" {
		t.Errorf("Xephyr's NoNewPrivs = %s, want 1", v)
	}
	if soft, hard, err := procfs.Limit(s.PID, "Max data size"); err != nil || soft != strconv.Itoa(limit) || hard != strconv.Itoa(limit) {
		t.Errorf("Xephyr's Max data size = %s %s, want %d %d", soft, hard, limit, limit)
	}
	// The flag stays on the thread that started Xephyr (which may be the
	// main thread, then wedged by the runtime): what the launcher starts
	// later does not carry it.
	for i := range 20 {
		out, err := exec.Command("grep", "^NoNewPrivs:", "/proc/self/status").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(strings.TrimSpace(string(out)), "0") {
			t.Fatalf("child %d of the launcher has %s", i, out)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// pixmapBomb creates 4096x4096 pixmaps (64 MiB each at depth 24) until the
// server refuses one or n are made; it returns how many it made and the
// error that stopped it.
func pixmapBomb(conn *xgb.Conn, n int) (int, error) {
	root := xproto.Setup(conn).DefaultScreen(conn)
	for i := range n {
		id, err := xproto.NewPixmapId(conn)
		if err != nil {
			return i, err
		}
		if err := xproto.CreatePixmapChecked(conn, root.RootDepth, id, xproto.Drawable(root.Root), 4096, 4096).Check(); err != nil {
			return i, err
		}
	}
	return n, nil
}

// TestMemoryLimitPixmapBomb: a client that makes Xephyr allocate without
// end gets BadAlloc once the limit is reached; Xephyr stays within it and
// goes on serving.
func TestMemoryLimitPixmapBomb(t *testing.T) {
	host := startXvfb(t, "1024x768x24", false)
	const limit = 256 << 20
	s, cookie := startXephyr(t, host, Options{Screen: "640x480x24", MemoryLimit: limit})
	conn, err := Dial(testCtx(t), s.Display, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	made, err := pixmapBomb(conn, 64) // 4 GiB if nothing stops it
	var alloc xproto.AllocError
	if !errors.As(err, &alloc) {
		t.Fatalf("after %d pixmaps: %v, want BadAlloc", made, err)
	}
	if made*64 > limit>>20 {
		t.Errorf("%d pixmaps of 64 MiB made under a %d MiB limit", made, limit>>20)
	}
	kb, _ := strconv.Atoi(strings.Fields(procField(t, s.PID, "VmData"))[0])
	if kb<<10 > limit {
		t.Errorf("Xephyr's VmData is %d MiB, over the %d MiB limit", kb>>10, limit>>20)
	}
	t.Logf("BadAlloc after %d pixmaps of 64 MiB; Xephyr's VmData %d MiB, limit %d MiB", made, kb>>10, limit>>20)
	roundTrip(t, conn) // still serving
	select {
	case <-s.Done():
		t.Fatalf("Xephyr died: %v", s.Err())
	default:
	}
}
