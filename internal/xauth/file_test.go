package xauth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// assertNoLockFiles fails if FILE-c, FILE-l or FILE-n is left behind.
func assertNoLockFiles(t *testing.T, path string) {
	t.Helper()
	for _, suffix := range []string{"-c", "-l", "-n"} {
		if _, err := os.Lstat(path + suffix); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s%s left behind (%v)", path, suffix, err)
		}
	}
}

func TestMergeCreatesFile(t *testing.T) {
	path := tempAuth(t)
	e := WildEntry(5, cookieN(1))
	if err := Merge(t.Context(), path, e); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	got, err := ReadFile(path)
	if err != nil || !entriesEqual(got, []Entry{e}) {
		t.Errorf("ReadFile = %v, %v", got, err)
	}
	assertNoLockFiles(t, path)
}

func TestMergeEntries(t *testing.T) {
	c := func(n byte) []byte { return cookieN(n).Bytes() }
	l5 := Entry{FamilyLocal, []byte("vm"), "5", CookieName, c(1)}
	l5new := Entry{FamilyLocal, []byte("vm"), "5", CookieName, c(2)}
	l5xdm := Entry{FamilyLocal, []byte("vm"), "5", "XDM-AUTHORIZATION-1", c(3)}
	w5 := WildEntry(5, cookieN(4))
	w5new := WildEntry(5, cookieN(5))
	i6 := Entry{FamilyInternet, []byte{10, 0, 0, 1}, "6", CookieName, c(6)}
	tests := []struct {
		name           string
		old, add, want []Entry
	}{
		{"into empty", nil, []Entry{l5}, []Entry{l5}},
		{"replace in place", []Entry{l5, i6}, []Entry{l5new}, []Entry{l5new, i6}},
		{"other name is another key", []Entry{l5}, []Entry{l5xdm}, []Entry{l5, l5xdm}},
		{"wild is another key", []Entry{l5}, []Entry{w5}, []Entry{l5, w5}},
		{"later duplicate in input wins", nil, []Entry{w5, w5new}, []Entry{w5new}},
		{"xauth order", []Entry{l5xdm, w5}, []Entry{i6, l5}, []Entry{i6, l5, w5, l5xdm}},
		{"unnumbered after numbered", []Entry{{FamilyWild, nil, "", CookieName, c(7)}, {FamilyLocal, []byte("vm"), "", CookieName, c(8)}},
			[]Entry{w5, l5}, []Entry{l5, {FamilyLocal, []byte("vm"), "", CookieName, c(8)}, w5, {FamilyWild, nil, "", CookieName, c(7)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := xauthOrder(mergeEntries(tt.old, tt.add))
			if !entriesEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// mixedEntries covers every family, names other than MIT-MAGIC-COOKIE-1 and
// Wild entries, in an order xauth would change.
func mixedEntries(hostname string) []Entry {
	return []Entry{
		WildEntry(5, cookieN(1)),
		{FamilyNetname, []byte("unix.0@x"), "5", "SUN-DES-1", []byte{1, 2}},
		LocalEntry(hostname, 5, cookieN(2)),
		LocalEntry("other", 5, cookieN(3)),
		{FamilyInternet, []byte{10, 0, 0, 1}, "5", CookieName, cookieN(4).Bytes()},
		{FamilyInternet6, mustHex("fe800000000000000000000000000001"), "5", CookieName, cookieN(5).Bytes()},
		{FamilyWild, []byte{1, 2, 3, 4}, "5", CookieName, cookieN(6).Bytes()},
		{FamilyWild, nil, "", CookieName, cookieN(7).Bytes()},
		{FamilyLocal, []byte(hostname), "", "XDM-AUTHORIZATION-1", []byte{9}},
		LocalEntry(hostname, 6, cookieN(8)),
		{FamilyLocalHost, []byte("localhost"), "5", CookieName, cookieN(9).Bytes()},
		{FamilyKrb5Principal, []byte("u@R"), "5", "MIT-KERBEROS-5", []byte("tkt")},
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, mustReadFile(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMergeMatchesXauth merges the same entries with Merge and with
// `xauth nmerge -` into copies of one file: the results are byte-identical.
func TestMergeMatchesXauth(t *testing.T) {
	requireXauth(t)
	hostname, _ := os.Hostname()
	all := mixedEntries(hostname)
	tests := []struct {
		name     string
		old, add []Entry
	}{
		{"all families into a new file", nil, all},
		{"replace and append", all[:6], []Entry{WildEntry(5, cookieN(20)), LocalEntry("new", 1, cookieN(21)), all[0]}},
		{"reorders an unordered file", all, []Entry{LocalEntry(hostname, 5, cookieN(22))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ours, theirs := filepath.Join(dir, "ours"), filepath.Join(dir, "theirs")
			if tt.old != nil {
				mustWriteFile(t, ours, tt.old)
				copyFile(t, ours, theirs)
			}
			if err := Merge(t.Context(), ours, tt.add...); err != nil {
				t.Fatal(err)
			}
			var numeric bytes.Buffer
			if err := WriteNumeric(&numeric, tt.add); err != nil {
				t.Fatal(err)
			}
			runXauth(t, numeric.String(), "-q", "-f", theirs, "nmerge", "-")
			if !bytes.Equal(mustReadFile(t, ours), mustReadFile(t, theirs)) {
				t.Errorf("files differ:\nours:\n%s\nxauth:\n%s", nlist(t, ours), nlist(t, theirs))
			}
			assertNoLockFiles(t, ours)
		})
	}
}

// TestRemoveMatchesXauth removes displays with Remove and with `xauth
// remove` from copies of one file: the results are byte-identical.
func TestRemoveMatchesXauth(t *testing.T) {
	requireXauth(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, display := range []string{":5", "unix:5.1", "10.0.0.1:5", "other/unix:5", "[fe80::1]:5", ":6", ":9", "127.0.0.1:5"} {
		t.Run(display, func(t *testing.T) {
			dir := t.TempDir()
			ours, theirs := filepath.Join(dir, "ours"), filepath.Join(dir, "theirs")
			// Start from xauth's order, as xauth rewrites it on any change.
			if err := Merge(t.Context(), ours, mixedEntries(hostname)...); err != nil {
				t.Fatal(err)
			}
			copyFile(t, ours, theirs)
			before := mustReadFile(t, ours)
			if err := Remove(t.Context(), ours, display); err != nil {
				t.Fatal(err)
			}
			runXauth(t, "", "-q", "-f", theirs, "remove", display)
			after := mustReadFile(t, ours)
			if !bytes.Equal(after, mustReadFile(t, theirs)) {
				t.Errorf("files differ:\nours:\n%s\nxauth:\n%s", nlist(t, ours), nlist(t, theirs))
			}
			if display == ":5" && len(after) >= len(before) {
				t.Error("remove :5 removed nothing")
			}
			assertNoLockFiles(t, ours)
		})
	}
}

func TestRemove(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		path := tempAuth(t)
		if err := Remove(t.Context(), path, ":1"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Remove created %s", path)
		}
	})
	t.Run("bad display", func(t *testing.T) {
		path := tempAuth(t)
		err := Remove(t.Context(), path, "nohost")
		if _, ok := errors.AsType[*DisplayError](err); !ok || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("wild and unnumbered entries go too", func(t *testing.T) {
		path := tempAuth(t)
		keep := []Entry{WildEntry(6, cookieN(1)), {FamilyInternet, []byte{10, 9, 8, 6}, "", CookieName, cookieN(4).Bytes()}}
		mustWriteFile(t, path, append([]Entry{WildEntry(5, cookieN(3)), {FamilyWild, nil, "", CookieName, cookieN(2).Bytes()},
			{FamilyInternet, []byte{10, 9, 8, 7}, "", CookieName, cookieN(5).Bytes()}}, keep...))
		if err := Remove(t.Context(), path, "10.9.8.7:5"); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadFile(path); err != nil || !entriesEqual(got, xauthOrder(keep)) {
			t.Errorf("ReadFile = %v, %v", got, err)
		}
	})
}

func TestWriteFile(t *testing.T) {
	path := tempAuth(t)
	first := []Entry{LocalEntry("a", 1, cookieN(1))}
	mustWriteFile(t, path, first)
	second := []Entry{WildEntry(2, cookieN(2)), LocalEntry("b", 2, cookieN(3))}
	raw := mustWriteFile(t, path, second)
	var want bytes.Buffer
	if err := Write(&want, second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want.Bytes()) {
		t.Error("WriteFile wrote other bytes than Write")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stat: %v, %v", fi, err)
	}
	for _, bad := range []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"empty", nil, "no entries"},
		{"too long", []Entry{{Data: make([]byte, maxField+1)}}, "limit"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			err := WriteFile(path, bad.entries)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("err = %v", err)
			}
			if !bytes.Equal(mustReadFile(t, path), raw) {
				t.Error("file changed")
			}
		})
	}
	names, _ := os.ReadDir(filepath.Dir(path))
	if len(names) != 1 {
		t.Errorf("directory holds %d files, want only the Xauthority file", len(names))
	}
}

// holdLock starts an interactive `xauth -f path`, which holds the lock until
// its stdin closes, and returns once it holds the lock. It returns the
// command and its stdin.
func holdLock(t *testing.T, path string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), requireXauth(t), "-f", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	// xauth locks before it reads commands, and reports a bad command on
	// unbuffered stderr: once that line arrives it holds the lock.
	if _, err := io.WriteString(stdin, "ready?\n"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "ready?") {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return cmd, stdin
		}
	}
	t.Fatalf("xauth -f %s ended before taking the lock: %v", path, sc.Err())
	return nil, nil
}

func TestLockHeldByLiveXauth(t *testing.T) {
	path := tempAuth(t)
	orig := mustWriteFile(t, path, []Entry{LocalEntry("a", 1, cookieN(1))})
	cmd, stdin := holdLock(t, path)

	quick := Locker{Retries: 3, RetryWait: time.Millisecond}
	err := quick.Merge(t.Context(), path, WildEntry(2, cookieN(2)))
	le, ok := errors.AsType[*LockedError](err)
	if !ok {
		t.Fatalf("err = %v, want *LockedError", err)
	}
	if le.Path != path || le.Attempts != 3 || !strings.Contains(err.Error(), path+"-l") || !strings.Contains(err.Error(), "remove "+path+"-c") {
		t.Errorf("LockedError %+v: %v", le, err)
	}
	if !bytes.Equal(mustReadFile(t, path), orig) {
		t.Error("file changed while locked")
	}
	if err := quick.Remove(t.Context(), path, "a/unix:1"); !errors.As(err, &le) {
		t.Errorf("Remove: err = %v, want *LockedError", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Merge(ctx, path, WildEntry(2, cookieN(2))); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), path) {
		t.Errorf("canceled: err = %v", err)
	}

	// Once xauth exits the lock is free and a waiting Merge gets it.
	if err := stdin.Close(); err != nil {
		t.Fatal(err)
	}
	// It exits 1 for the unknown command holdLock sent.
	if err := cmd.Wait(); err != nil && cmd.ProcessState.ExitCode() != 1 {
		t.Fatal(err)
	}
	if err := Merge(t.Context(), path, WildEntry(2, cookieN(2))); err != nil {
		t.Fatal(err)
	}
	assertNoLockFiles(t, path)
}

func TestStaleLockBroken(t *testing.T) {
	path := tempAuth(t)
	orig := mustWriteFile(t, path, []Entry{LocalEntry("a", 1, cookieN(1))})
	cmd, _ := holdLock(t, path)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for _, f := range []string{path + "-c", path + "-l"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the killed xauth left no %s: %v", f, err)
		}
	}
	// A young lock is not broken by the default dead time.
	err := Locker{Retries: 2, RetryWait: time.Millisecond}.Merge(t.Context(), path, WildEntry(2, cookieN(2)))
	if _, ok := errors.AsType[*LockedError](err); !ok {
		t.Fatalf("err = %v, want *LockedError", err)
	}
	if !bytes.Equal(mustReadFile(t, path), orig) {
		t.Fatal("file changed while locked")
	}
	// With a short dead time it is broken once older than that.
	short := Locker{DeadTime: 20 * time.Millisecond, Retries: 1000, RetryWait: 10 * time.Millisecond}
	if err := short.Merge(t.Context(), path, WildEntry(2, cookieN(2))); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFile(path); err != nil || len(got) != 2 {
		t.Errorf("ReadFile = %v, %v", got, err)
	}
	assertNoLockFiles(t, path)
	if out := nlist(t, path); strings.Count(out, "\n") != 2 {
		t.Errorf("xauth nlist after breaking the lock:\n%s", out)
	}
}

// mountReadOnly mounts a tmpfs on dir holding one file with content, then
// remounts it read-only. It skips (fails under CI=true) where mounting is
// not allowed.
func mountReadOnly(t *testing.T, dir, name string, content []byte) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		testguest.Missing(t, fmt.Sprintf("a tmpfs mount (%v)", err), "run the test as root")
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}

// TestBadInput checks that each failure names the path and leaves the
// original file byte-identical.
func TestBadInput(t *testing.T) {
	valid := func() []byte {
		var b bytes.Buffer
		_ = Write(&b, []Entry{LocalEntry("a", 1, cookieN(1)), WildEntry(2, cookieN(2))})
		return b.Bytes()
	}()
	tests := []struct {
		name  string
		setup func(t *testing.T) (path string, orig []byte)
		check func(t *testing.T, err error) // extra checks on Merge's error
	}{
		{"truncated file", func(t *testing.T) (string, []byte) {
			p := tempAuth(t)
			orig := valid[:len(valid)-5]
			if err := os.WriteFile(p, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			return p, orig
		}, func(t *testing.T, err error) {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Field != "data" || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("err = %v, want a truncated *FormatError", err)
			}
		}},
		{"absurd length", func(t *testing.T) (string, []byte) {
			p := tempAuth(t)
			orig := append(append([]byte{}, valid...), mustHex("0100fffe00")...)
			if err := os.WriteFile(p, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			return p, orig
		}, func(t *testing.T, err error) {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset != int64(len(valid)+4) || !strings.Contains(err.Error(), "need 65534 bytes") {
				t.Errorf("err = %v, want *FormatError at %d", err, len(valid)+4)
			}
		}},
		// Root reads files of mode 0000, so a directory stands in for an
		// unreadable file.
		{"unreadable (a directory)", func(t *testing.T) (string, []byte) {
			p := tempAuth(t)
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, func(t *testing.T, err error) {
			if !errors.Is(err, syscall.EISDIR) {
				t.Errorf("err = %v, want EISDIR", err)
			}
		}},
		{"parent is a regular file", func(t *testing.T) (string, []byte) {
			parent := tempAuth(t)
			if err := os.WriteFile(parent, valid, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(parent, "Xauthority"), nil
		}, func(t *testing.T, err error) {
			if !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("err = %v, want ENOTDIR", err)
			}
		}},
		// Root ignores directory permissions, so a read-only tmpfs stands in
		// for a read-only directory.
		{"read-only directory", func(t *testing.T) (string, []byte) {
			dir := t.TempDir()
			mountReadOnly(t, dir, "Xauthority", valid)
			return filepath.Join(dir, "Xauthority"), valid
		}, func(t *testing.T, err error) {
			if !errors.Is(err, syscall.EROFS) {
				t.Errorf("err = %v, want EROFS", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, orig := tt.setup(t)
			unchanged := func(op string) {
				t.Helper()
				if orig == nil {
					return
				}
				if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, orig) {
					t.Errorf("after %s the file changed (%v)", op, err)
				}
			}
			err := Merge(t.Context(), path, WildEntry(9, cookieN(9)))
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("Merge: err = %v, want one naming %s", err, path)
			}
			tt.check(t, err)
			unchanged("Merge")
			if err := Remove(t.Context(), path, ":2"); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("Remove: err = %v, want one naming %s", err, path)
			}
			unchanged("Remove")
			if strings.Contains(tt.name, "directory") || strings.Contains(tt.name, "parent") {
				if err := WriteFile(path, []Entry{WildEntry(9, cookieN(9))}); err == nil || !strings.Contains(err.Error(), path) {
					t.Errorf("WriteFile: err = %v, want one naming %s", err, path)
				}
				unchanged("WriteFile")
			}
			if _, err := ReadFile(path); orig == nil || !bytes.Equal(orig, valid) {
				if err == nil || !strings.Contains(err.Error(), path) {
					t.Errorf("ReadFile: err = %v, want one naming %s", err, path)
				}
			}
			assertNoLockFiles(t, path)
		})
	}
}

func TestFileName(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"XAUTHORITY wins", map[string]string{"XAUTHORITY": "/x/auth", "HOME": "/home/a"}, "/x/auth"},
		{"HOME", map[string]string{"HOME": "/home/a"}, "/home/a/.Xauthority"},
		{"neither", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FileName(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("FileName = %q, want %q", got, tt.want)
			}
		})
	}
}
