package memcg

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

func TestParseCgroups(t *testing.T) {
	got := parseCgroups("12:memory:/a/b\n4:cpu,cpuacct:/x\n1:name=systemd:/user.slice/u.scope\n0::/user.slice/u.scope\n\n")
	want := []cgroupLine{
		{memory: true, path: "/a/b"},
		{path: "/x"},
		{path: "/user.slice/u.scope"},
		{v2: true, path: "/user.slice/u.scope"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseCgroups = %+v, want %+v", got, want)
	}
}

// fakeProc writes a /proc with self/mountinfo and self/cgroup.
func fakeProc(t *testing.T, mountinfo, cgroup string) string {
	t.Helper()
	p := t.TempDir()
	if err := os.MkdirAll(filepath.Join(p, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"mountinfo": mountinfo, "cgroup": cgroup} {
		if err := os.WriteFile(filepath.Join(p, "self", name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestReadHierarchies(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name, mountinfo, cgroup string
		v2, v1                  string
	}{
		{"hybrid, like this machine",
			"30 25 0:26 / " + root + "/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n" +
				"31 25 0:27 / " + root + "/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
				"32 25 0:28 / " + root + "/unified rw,relatime - cgroup2 cgroup2 rw\n",
			"4:memory:/process_api/x\n1:cpu:/\n0::/\n",
			root + "/unified", root + "/memory/process_api/x"},
		{"unified, cgroup namespace root inside a mount of a subtree",
			"40 1 0:30 /user.slice " + root + "/cg\\040v2 rw - cgroup2 cgroup2 rw,nsdelegate\n",
			"0::/user.slice/user-1000.slice/app.scope\n",
			root + "/cg v2/user-1000.slice/app.scope", ""},
		{"a path that would leave the mount", "40 1 0:30 / " + root + "/cg rw - cgroup2 cgroup2 rw\n", "0::/../../etc\n", "", ""},
		{"cgroup outside the mounted subtree", "40 1 0:30 /other " + root + "/cg rw - cgroup2 cgroup2 rw\n", "0::/user.slice\n", "", ""},
		{"nothing mounted", "20 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "0::/\n", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := readHierarchies(fakeProc(t, tc.mountinfo, tc.cgroup))
			if err != nil {
				t.Fatal(err)
			}
			if h.v2Dir != tc.v2 || h.v1Dir != tc.v1 {
				t.Errorf("v2 %q v1 %q, want %q %q", h.v2Dir, h.v1Dir, tc.v2, tc.v1)
			}
		})
	}
}

// kernelMkdir makes a directory with the control files a cgroup v2 leaf
// with the memory controller has.
func kernelMkdir(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"cgroup.procs", "cgroup.subtree_control", "memory.max", "memory.swap.max"} {
		if err := os.WriteFile(filepath.Join(p, f), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestApplyV2FakeTree: on a unified hierarchy the leaf goes where the
// memory controller is handed down and the user may write: the parent of
// the launcher's own cgroup (which has processes, so cannot hand it down),
// with memory.max, memory.swap.max 0 and the PID. A fake tree: this
// machine's cgroup v2 has no memory controller (the real leaf is
// TestApplyReal's, on cgroup v1).
func TestApplyV2FakeTree(t *testing.T) {
	root := t.TempDir()
	own := filepath.Join(root, "user", "app")
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(own, "cgroup.subtree_control"), "")
	write(filepath.Join(root, "user", "cgroup.subtree_control"), "cpu memory pids\n")
	proc := fakeProc(t, "40 1 0:30 / "+root+" rw - cgroup2 cgroup2 rw\n", "0::/user/app\n")
	l, err := Apply(context.Background(), 4242, 300<<20, Config{Name: "xvmview-xephyr-t", NoScope: true, Proc: proc, mkdir: kernelMkdir})
	if err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(root, "user", "xvmview-xephyr-t")
	if l.Mechanism != CgroupV2 || l.Path != leaf || !l.Owned() {
		t.Fatalf("Apply = %+v, want cgroup v2 at %s", l, leaf)
	}
	for f, want := range map[string]string{"memory.max": strconv.Itoa(300 << 20), "memory.swap.max": "0", "cgroup.procs": "4242"} {
		if b, _ := os.ReadFile(filepath.Join(leaf, f)); string(b) != want {
			t.Errorf("%s = %q, want %q", f, b, want)
		}
	}
	if !strings.Contains(l.String(), "systemd user scope: turned off") || !strings.Contains(l.String(), "memory.max 300 MiB") {
		t.Errorf("String() = %q", l.String())
	}

	// Without the controller handed down anywhere: nothing, and why.
	write(filepath.Join(root, "user", "cgroup.subtree_control"), "pids\n")
	l, err = Apply(context.Background(), 4242, 300<<20, Config{Name: "xvmview-xephyr-u", NoScope: true, Proc: proc, mkdir: kernelMkdir})
	if err != nil {
		t.Fatal(err)
	}
	if l.Mechanism != None || !strings.Contains(l.String(), "does not hand the memory controller to its children") || !strings.Contains(l.String(), "cgroup v1: no cgroup v1 memory controller mounted") {
		t.Errorf("Apply = %v, want none with the reasons", l)
	}
}

func TestApplyBadName(t *testing.T) {
	for _, n := range []string{"", "a/b", "../x", "x y", strings.Repeat("a", 101)} {
		if _, err := Apply(context.Background(), 1, 64<<20, Config{Name: n}); err == nil {
			t.Errorf("Apply with name %q: no error", n)
		}
	}
}

func TestRemoveStaleRefuses(t *testing.T) {
	for _, p := range []string{"", "relative/xvmview-xephyr-1", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/../xvmview-xephyr-1/", "/sys/fs/cgroup/memory/other"} {
		if err := RemoveStale(context.Background(), p, "xvmview-xephyr-"); err == nil {
			t.Errorf("RemoveStale(%q): no error", p)
		}
	}
	if err := RemoveStale(context.Background(), filepath.Join(t.TempDir(), "xvmview-xephyr-gone"), "xvmview-xephyr-"); err != nil {
		t.Errorf("RemoveStale of a missing leaf: %v", err)
	}
}

// needCgroup skips (fails under CI=true) unless Probe finds a memory
// cgroup this user can write.
func needCgroup(t *testing.T) {
	t.Helper()
	for _, p := range Probe(Config{NoScope: true}) {
		if strings.Contains(p, "cgroup") {
			return
		}
	}
	testguest.Missing(t, "a memory cgroup this user can write", "run as root on a machine with the cgroup v1 memory controller or a delegated cgroup v2 subtree")
}

// TestApplyReal: a real process goes into a real leaf with the limit, the
// leaf stays while the process runs and goes after it.
func TestApplyReal(t *testing.T) {
	needCgroup(t)
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	const n = 128 << 20
	name := "xvmview-xephyr-test-" + strconv.Itoa(os.Getpid())
	l, err := Apply(context.Background(), cmd.Process.Pid, n, Config{Name: name, NoScope: true})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Owned() || filepath.Base(l.Path) != name {
		t.Fatalf("Apply = %v, want a leaf named %s", l, name)
	}
	t.Cleanup(func() { _ = os.Remove(l.Path) })
	t.Logf("%v", l)
	groups, err := readCgroups("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, g := range groups {
		in = in || (g.memory || g.v2 && l.Mechanism == CgroupV2) && strings.HasSuffix(g.path, "/"+name)
	}
	if !in {
		t.Errorf("the process's cgroups %+v do not name the leaf %s", groups, name)
	}
	file := "memory.limit_in_bytes"
	if l.Mechanism == CgroupV2 {
		file = "memory.max"
	}
	if b, _ := os.ReadFile(filepath.Join(l.Path, file)); strings.TrimSpace(string(b)) != strconv.Itoa(n) {
		t.Errorf("%s = %q, want %d", file, b, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := l.Remove(ctx); err == nil {
		t.Errorf("Remove while the process runs: no error")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := l.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leaf %s still there after Remove: %v", l.Path, err)
	}
	// A leaf a dead launcher left: RemoveStale removes it.
	cmd2 := exec.Command("sleep", "60")
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	l2, err := Apply(context.Background(), cmd2.Process.Pid, n, Config{Name: name + "-stale", NoScope: true})
	_ = cmd2.Process.Kill()
	_ = cmd2.Wait()
	if err != nil || !l2.Owned() {
		t.Fatalf("Apply = %v, %v", l2, err)
	}
	if err := RemoveStale(context.Background(), l2.Path, "xvmview-xephyr-"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l2.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leaf %s still there after RemoveStale", l2.Path)
	}
}

// FuzzParse: the parsers of /proc's cgroup and mountinfo files never
// panic, and a cgroup's directory never leaves its mount point.
func FuzzParse(f *testing.F) {
	f.Add("30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
		"4:memory:/process_api/x\n0::/\n")
	f.Add("40 1 0:30 /user.slice /cg\\040v2 rw - cgroup2 cgroup2 rw,nsdelegate\n", "0::/user.slice/../../etc\n")
	f.Add("", "::\n1::\n0:memory:/a")
	f.Fuzz(func(t *testing.T, mountinfo, cgroup string) {
		mounts := parseMounts(mountinfo)
		for _, g := range parseCgroups(cgroup) {
			for _, m := range mounts {
				dir, ok := under(m, g.path)
				if !ok {
					continue
				}
				top := filepath.Clean(m.point)
				if dir != top && !strings.HasPrefix(dir, strings.TrimSuffix(top, "/")+"/") {
					t.Errorf("under(%+v, %q) = %q, outside the mount point", m, g.path, dir)
				}
			}
		}
	})
}
