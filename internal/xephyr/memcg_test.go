package xephyr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/memcg"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/testguest"
)

// needMemoryCgroup skips (fails under CI=true) unless this user can make
// a memory cgroup leaf here.
func needMemoryCgroup(t *testing.T) {
	t.Helper()
	for _, p := range memcg.Probe(memcg.Config{NoScope: true}) {
		if strings.Contains(p, "cgroup") {
			return
		}
	}
	testguest.Missing(t, "a memory cgroup this user can write", "run as root on a machine with the cgroup v1 memory controller or a delegated cgroup v2 subtree")
}

// v1MemoryDir is this test process's cgroup v1 memory directory, "" when
// there is none.
func v1MemoryDir(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "memory") {
			d := filepath.Join("/sys/fs/cgroup/memory", f[2])
			if _, err := os.Stat(filepath.Join(d, "memory.limit_in_bytes")); err == nil {
				return d
			}
		}
	}
	return ""
}

// cgroupOf returns the path of pid's memory cgroup (cgroup v1's memory
// line, else the unified one).
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	v2 := ""
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		if slices.Contains(strings.Split(f[1], ","), "memory") {
			return f[2]
		}
		if f[0] == "0" && f[1] == "" {
			v2 = f[2]
		}
	}
	return v2
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// touchingBomb is pixmapBomb whose pixmaps are filled, so that their pages
// are really used (RLIMIT_DATA counts them when allocated, a memory cgroup
// once touched). It stops at the first error (the connection breaks when
// Xephyr is killed).
func touchingBomb(conn *xgb.Conn, n int) (int, error) {
	root := xproto.Setup(conn).DefaultScreen(conn)
	for i := range n {
		id, err := xproto.NewPixmapId(conn)
		if err != nil {
			return i, err
		}
		if err := xproto.CreatePixmapChecked(conn, root.RootDepth, id, xproto.Drawable(root.Root), 4096, 4096).Check(); err != nil {
			return i, err
		}
		gc, err := xproto.NewGcontextId(conn)
		if err != nil {
			return i, err
		}
		if err := xproto.CreateGCChecked(conn, gc, xproto.Drawable(id), xproto.GcForeground, []uint32{0x123456}).Check(); err != nil {
			return i, err
		}
		if err := xproto.PolyFillRectangleChecked(conn, xproto.Drawable(id), gc, []xproto.Rectangle{{Width: 4096, Height: 4096}}).Check(); err != nil {
			return i, err
		}
	}
	return n, nil
}

// TestStartMemoryCgroup: without systemd, Start puts Xephyr in a memory
// cgroup leaf of its own before it accepts clients: /proc/PID/cgroup names
// the leaf and the limit file holds the size. With the cgroup's limit set
// below RLIMIT_DATA the cgroup alone stops a pixmap bomb that touches its
// pages (the kernel kills Xephyr at the limit: no swap beyond it), and
// Close removes the leaf.
func TestStartMemoryCgroup(t *testing.T) {
	needMemoryCgroup(t)
	host := startXvfb(t, "1024x768x24", false)
	const limit = 256 << 20
	name := fmt.Sprintf("xvmview-xephyr-test-%d-cg", os.Getpid())
	s, cookie := startXephyr(t, host, Options{Screen: "640x480x24", MemoryLimit: limit, Memcg: &memcg.Config{Name: name, NoScope: true}})
	t.Logf("memory: %v", s.Memory)
	if !s.Memory.Owned() || filepath.Base(s.Memory.Path) != name {
		t.Fatalf("Memory = %v, want a cgroup leaf %s", s.Memory, name)
	}
	leaf := s.Memory.Path
	t.Cleanup(func() { _ = os.Remove(leaf) })
	if got := cgroupOf(t, s.PID); !strings.HasSuffix(got, "/"+name) {
		t.Errorf("Xephyr's memory cgroup is %q, want the leaf %s", got, name)
	}
	file := "memory.limit_in_bytes"
	if s.Memory.Mechanism == memcg.CgroupV2 {
		file = "memory.max"
	}
	if got := readTrim(t, filepath.Join(leaf, file)); got != strconv.Itoa(limit) {
		t.Errorf("%s = %s, want %d", file, got, limit)
	}
	if soft, _, err := procfs.Limit(s.PID, "Max data size"); err != nil || soft != strconv.Itoa(limit) {
		t.Errorf("RLIMIT_DATA = %s, want %d as well (the backstop)", soft, limit)
	}

	// Below the backstop (RLIMIT_DATA cannot be raised again: no
	// CAP_SYS_RESOURCE here), so what stops the bomb is the cgroup.
	const cgLimit = 128 << 20
	if err := os.WriteFile(filepath.Join(leaf, file), []byte(strconv.Itoa(cgLimit)), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.Memory.Mechanism == memcg.CgroupV2 {
		_ = os.WriteFile(filepath.Join(leaf, "memory.swap.max"), []byte("0"), 0o644)
	} else {
		_ = os.WriteFile(filepath.Join(leaf, "memory.memsw.limit_in_bytes"), []byte(strconv.Itoa(cgLimit)), 0o644)
	}
	conn, err := Dial(testCtx(t), s.Display, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	made, err := touchingBomb(conn, 32) // 2 GiB if nothing stops it
	if err == nil {
		t.Fatalf("%d filled pixmaps of 64 MiB made under a %d MiB cgroup", made, cgLimit>>20)
	}
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("after %d pixmaps (%v) Xephyr still runs", made, err)
	}
	var ee *ExitError
	if xerr := s.Err(); !errors.As(xerr, &ee) || !strings.Contains(xerr.Error(), "killed") {
		t.Errorf("Xephyr ended with %v, want killed by the kernel", xerr)
	}
	if made*64 > cgLimit>>20 {
		t.Errorf("%d filled pixmaps of 64 MiB made under a %d MiB cgroup", made, cgLimit>>20)
	}
	if s.Memory.Mechanism == memcg.CgroupV1 {
		t.Logf("memory.failcnt %s, memory.memsw.failcnt %s, memory.max_usage_in_bytes %s",
			readTrim(t, filepath.Join(leaf, "memory.failcnt")), readTrim(t, filepath.Join(leaf, "memory.memsw.failcnt")), readTrim(t, filepath.Join(leaf, "memory.max_usage_in_bytes")))
		if oc := readTrim(t, filepath.Join(leaf, "memory.oom_control")); !strings.Contains(oc, "oom_kill 1") {
			t.Errorf("memory.oom_control = %q, want one OOM kill", oc)
		}
	}
	t.Logf("stopped after %d filled pixmaps of 64 MiB: %v", made, s.Err())
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(leaf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leaf %s still there after Close: %v", leaf, err)
	}
}

// TestStartMemoryRlimitOnly: with neither a way to systemd nor a cgroup
// (no session bus, no cgroup mounted in the /proc it reads), Start says why
// and RLIMIT_DATA alone limits Xephyr.
func TestStartMemoryRlimitOnly(t *testing.T) {
	host := startXvfb(t, "1024x768x24", false)
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte("20 1 8:1 / / rw - ext4 /dev/sda1 rw\n"), 0o644)
	_ = os.WriteFile(filepath.Join(proc, "self", "cgroup"), []byte("0::/\n"), 0o644)
	const limit = 200 << 20
	s, _ := startXephyr(t, host, Options{Screen: "640x480x24", MemoryLimit: limit,
		Memcg: &memcg.Config{Name: "xvmview-xephyr-test-none", Proc: proc}})
	if s.Memory == nil || s.Memory.Mechanism != memcg.None || s.Memory.Owned() {
		t.Fatalf("Memory = %v, want none", s.Memory)
	}
	for _, want := range []string{"systemd user scope: no session bus", "cgroup v2: no cgroup2 hierarchy mounted", "cgroup v1: no cgroup v1 memory controller mounted"} {
		if !strings.Contains(s.Memory.String(), want) {
			t.Errorf("Memory = %q, want it to say %q", s.Memory, want)
		}
	}
	if soft, hard, err := procfs.Limit(s.PID, "Max data size"); err != nil || soft != strconv.Itoa(limit) || hard != strconv.Itoa(limit) {
		t.Errorf("RLIMIT_DATA = %s %s, want %d", soft, hard, limit)
	}
}

// fakeSystemd is org.freedesktop.systemd1 on a private session bus: it
// records StartTransientUnit calls and, by behaviour, answers as the
// user's systemd would, or not at all.
type fakeSystemd struct {
	t        *testing.T
	conn     *dbus.Conn
	behave   string // "done": scope made; "failed": the job fails; "silent": never answers; "nomove": done, PID left where it is
	release  chan struct{}
	mu       sync.Mutex
	calls    []startCall
	madeDirs []string
}

type startCall struct {
	Name, Mode string
	Props      map[string]any
	Aux        int
}

type fakeProperty struct {
	Name  string
	Value dbus.Variant
}

type fakeAux struct {
	Name  string
	Props []fakeProperty
}

func startFakeSystemd(t *testing.T, bus *testguest.SessionBus, behave string) *fakeSystemd {
	t.Helper()
	conn, err := dbus.Dial(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Auth(nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{t: t, conn: conn, behave: behave, release: make(chan struct{})}
	t.Cleanup(func() {
		close(f.release)
		conn.Close()
		for _, d := range f.madeDirs {
			_ = os.Remove(d)
		}
	})
	if err := conn.Export(f, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	r, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue)
	if err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v, %v", r, err)
	}
	return f
}

// StartTransientUnit is the method systemd's manager has.
func (f *fakeSystemd) StartTransientUnit(name, mode string, props []fakeProperty, aux []fakeAux) (dbus.ObjectPath, *dbus.Error) {
	c := startCall{Name: name, Mode: mode, Props: map[string]any{}, Aux: len(aux)}
	for _, p := range props {
		c.Props[p.Name] = p.Value.Value()
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	n := len(f.calls)
	f.mu.Unlock()
	job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", n))
	result := "done"
	switch f.behave {
	case "silent":
		<-f.release
		return "", dbus.MakeFailedError(errors.New("gone"))
	case "failed":
		result = "failed"
	case "done":
		// What systemd does on this machine's memory controller: a
		// cgroup for the scope with MemoryMax, the PID moved into it.
		dir := filepath.Join(v1MemoryDir(f.t), name)
		pids, _ := c.Props["PIDs"].([]uint32)
		max, _ := c.Props["MemoryMax"].(uint64)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", dbus.MakeFailedError(err)
		}
		f.mu.Lock()
		f.madeDirs = append(f.madeDirs, dir)
		f.mu.Unlock()
		_ = os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatUint(max, 10)), 0o644)
		for _, pid := range pids {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(int(pid))), 0o644)
		}
	}
	// Before the reply, the harder order for the caller.
	if err := f.conn.Emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.JobRemoved", uint32(n), job, name, result); err != nil {
		return "", dbus.MakeFailedError(err)
	}
	return job, nil
}

func (f *fakeSystemd) recorded() []startCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// TestStartMemoryScope: with the user's systemd on the session bus (a fake
// org.freedesktop.systemd1 on a real dbus-daemon), Start asks it for a
// scope holding Xephyr with MemoryMax and no swap, and uses it once the job
// is done and Xephyr is in it with the limit; a failed job, a scope that
// did not get Xephyr, and a systemd that never answers make it fall back to
// a cgroup of its own within the scope deadline.
func TestStartMemoryScope(t *testing.T) {
	needMemoryCgroup(t)
	if v1MemoryDir(t) == "" {
		testguest.Missing(t, "the cgroup v1 memory controller (the fake systemd makes its scope there)", "run as root on a machine with cgroup v1 memory")
	}
	host := startXvfb(t, "1024x768x24", false)
	const limit = 300 << 20
	for _, tc := range []struct {
		behave string
		want   memcg.Mechanism
		why    string
	}{
		{"done", memcg.Scope, ""},
		{"failed", memcg.CgroupV1, `ended "failed"`},
		{"nomove", memcg.CgroupV1, "is not in it"},
		{"silent", memcg.CgroupV1, "no answer within 500ms"},
	} {
		t.Run(tc.behave, func(t *testing.T) {
			bus := testguest.StartSessionBus(t)
			f := startFakeSystemd(t, bus, tc.behave)
			name := fmt.Sprintf("xvmview-xephyr-test-%d-%s", os.Getpid(), tc.behave)
			env := append(host.Env(), "DBUS_SESSION_BUS_ADDRESS="+bus.Address)
			start := time.Now()
			s, _ := startXephyr(t, host, Options{Screen: "640x480x24", MemoryLimit: limit, Env: env,
				Memcg: &memcg.Config{Name: name, ScopeTimeout: 500 * time.Millisecond}})
			took := time.Since(start)
			t.Logf("Start took %v; memory: %v", took, s.Memory)
			if s.Memory.Owned() {
				leaf := s.Memory.Path
				t.Cleanup(func() { _ = os.Remove(leaf) })
			}
			calls := f.recorded()
			if len(calls) != 1 {
				t.Fatalf("StartTransientUnit calls: %+v, want 1", calls)
			}
			c := calls[0]
			wantProps := map[string]any{
				"PIDs": []uint32{uint32(s.PID)}, "MemoryMax": uint64(limit), "MemorySwapMax": uint64(0),
				"CollectMode": "inactive-or-failed", "Description": "xvmview nested X server (" + name + ")",
			}
			if c.Name != name+".scope" || c.Mode != "fail" || c.Aux != 0 || fmt.Sprint(c.Props) != fmt.Sprint(wantProps) {
				t.Errorf("StartTransientUnit(%q, %q, %v, %d aux), want (%q, \"fail\", %v, 0 aux)", c.Name, c.Mode, c.Props, c.Aux, name+".scope", wantProps)
			}
			if s.Memory.Mechanism != tc.want {
				t.Fatalf("Memory = %v, want %v", s.Memory, tc.want)
			}
			if !strings.Contains(s.Memory.String(), tc.why) {
				t.Errorf("Memory = %q, want it to say %q", s.Memory, tc.why)
			}
			if got := cgroupOf(t, s.PID); !strings.HasSuffix(got, "/"+name) && !strings.HasSuffix(got, "/"+name+".scope") {
				t.Errorf("Xephyr's memory cgroup is %q, want the scope's or the leaf", got)
			}
			// Generous for a loaded machine; without the deadline a
			// silent systemd would hold Start until its own timeout.
			if took > 10*time.Second {
				t.Errorf("Start took %v with a 500ms scope deadline", took)
			}
		})
	}
}
