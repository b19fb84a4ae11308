package session

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xephyr"
)

func testProfile(t *testing.T, name, body string) profile.Profile {
	t.Helper()
	p, err := profile.Parse(name, name+".toml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewPlan(t *testing.T) {
	local := testProfile(t, "demo", `host = "local"
command = ["xeyes", "-fg", "red"]
window_manager = ["twm"]`)
	remote := testProfile(t, "web", `host = "web"
command = ["firefox"]
screen = "1024x768"`)
	remoteTCP := testProfile(t, "web", `host = "web"
command = ["firefox"]
transport = "tcp"
display_host = "10.1.0.1"`)
	target := &guest.Target{Alias: "web", HostName: "10.1.0.2", Port: 22, User: "alice", KnownHostsFiles: []string{"/home/a/.ssh/known_hosts"}}

	tests := []struct {
		name    string
		p       profile.Profile
		extra   []string
		facts   Facts
		wantErr string
		check   func(t *testing.T, pl Plan)
	}{
		{
			name:  "local demo",
			p:     local,
			extra: []string{"-bg", "x y"},
			facts: Facts{RuntimeRoot: "/run/user/1/xvmview"},
			check: func(t *testing.T, pl Plan) {
				if pl.Guest != nil || pl.Xephyr.ListenTCP {
					t.Errorf("local plan has a guest or listens on TCP: %+v", pl)
				}
				if want := []string{"xeyes", "-fg", "red", "-bg", "x y"}; !slices.Equal(pl.Command, want) {
					t.Errorf("command %q, want %q", pl.Command, want)
				}
				if pl.Xephyr.Name != "xvmview-demo" || pl.Xephyr.Title != "[demo] xeyes (local)" {
					t.Errorf("name %q title %q", pl.Xephyr.Name, pl.Xephyr.Title)
				}
			},
		},
		{
			name:  "remote over tcp",
			p:     remoteTCP,
			facts: Facts{Guest: target},
			check: func(t *testing.T, pl Plan) {
				if !pl.Xephyr.ListenTCP || pl.Transport != "tcp" || pl.DisplayHost != "10.1.0.1" {
					t.Errorf("tcp transport: listen %v, transport %q, display host %q", pl.Xephyr.ListenTCP, pl.Transport, pl.DisplayHost)
				}
			},
		},
		{
			name:  "remote over ssh by default",
			p:     remote,
			facts: Facts{Guest: target},
			check: func(t *testing.T, pl Plan) {
				if pl.Xephyr.ListenTCP || pl.Transport != "ssh" {
					t.Errorf("ssh transport: listen %v, transport %q", pl.Xephyr.ListenTCP, pl.Transport)
				}
				if pl.Guest == nil || pl.Guest == target || pl.Guest.HostName != "10.1.0.2" || pl.Guest.User != "alice" {
					t.Errorf("guest %+v", pl.Guest)
				}
				if pl.Xephyr.Title != "[web] firefox on web" || pl.Xephyr.Screen != "1024x768" {
					t.Errorf("title %q screen %q", pl.Xephyr.Title, pl.Xephyr.Screen)
				}
			},
		},
		{name: "remote without a resolved guest", p: remote, wantErr: "not resolved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := NewPlan(tc.p, tc.extra, tc.facts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, pl)
		})
	}
}

func TestDescribe(t *testing.T) {
	target := &guest.Target{Alias: "web", HostName: "10.1.0.2", Port: 2222, User: "alice"}
	tests := []struct {
		name      string
		transport string
		want      []string
		notWant   []string
	}{
		{"ssh", "ssh", []string{
			"-nolisten tcp", "127.0.0.1:6000+D", "env 'DISPLAY=localhost:D' 'XAUTHORITY=$XDG_RUNTIME_DIR/xvmview.XXXXXXXXXX/Xauthority' twm",
			"(stdin: ffff 0000 0001 D 0012",
		}, []string{"-listen tcp", "in clear", "xauth -q remove"}},
		{"tcp", "tcp", []string{
			"-listen tcp", "DISPLAY=LOCAL-ADDRESS-OF-SSH-CONNECTION:N", "(stdin: ffff 0000 0001 N 0012", "in clear",
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testProfile(t, "web", `host = "web"
command = ["firefox", "it's; rm -rf ~"]
window_manager = ["twm"]
transport = "`+tc.transport+`"`)
			pl, err := NewPlan(p, nil, Facts{RuntimeRoot: "/run/user/1/xvmview", Guest: target})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := pl.Describe(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			want := append([]string{
				"-displayfd 3", "-auth /run/user/1/xvmview/SESSION/server.xauth", "-reset", "-terminate 5",
				"-title '[web] firefox on web'", "-name xvmview-web",
				"alice@10.1.0.2 port 2222",
				"xauth -q -f $XDG_RUNTIME_DIR/xvmview.XXXXXXXXXX/Xauthority nmerge -", "<redacted>", "~/.Xauthority untouched",
				"-extension XVideo", "no_new_privs, RLIMIT_DATA 762 MiB (sized from the screen)",
				`firefox 'it'\''s; rm -rf ~'`,
			}, tc.want...)
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("dry run lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("dry run has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestPlanXephyrMemory(t *testing.T) {
	target := &guest.Target{Alias: "web", HostName: "10.1.0.2", Port: 22, User: "alice"}
	host := &xephyr.HostFacts{Width: 2560, Height: 1440}
	tests := []struct {
		name string
		keys string
		host *xephyr.HostFacts
		want int64
	}{
		{"fixed size: the screen", "screen = \"800x600\"\nresizeable = false\n", host, xephyr.DefaultMemoryLimit(800, 600)},
		{"resizeable: up to the host screen", "screen = \"800x600\"\n", host, xephyr.DefaultMemoryLimit(2560, 1440)},
		{"resizeable, host unknown", "screen = \"800x600\"\n", nil, xephyr.DefaultMemoryLimit(3840, 2160)},
		{"fullscreen: the host screen", "fullscreen = true\nresizeable = false\n", host, xephyr.DefaultMemoryLimit(2560, 1440)},
		{"larger than the host", "screen = \"4000x3000\"\n", host, xephyr.DefaultMemoryLimit(4000, 3000)},
		{"profile key", "screen = \"800x600\"\nxephyr_memory = \"1G\"\n", host, 1 << 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testProfile(t, "web", "host = \"web\"\ncommand = [\"xterm\"]\n"+tc.keys)
			pl, err := NewPlan(p, nil, Facts{RuntimeRoot: "/run/user/1/xvmview", Guest: target, Host: tc.host})
			if err != nil {
				t.Fatal(err)
			}
			if pl.Xephyr.MemoryLimit != tc.want {
				t.Errorf("MemoryLimit = %d MiB, want %d MiB", pl.Xephyr.MemoryLimit>>20, tc.want>>20)
			}
		})
	}
}

func TestHostDisplayFromEnv(t *testing.T) {
	env := []string{"DISPLAY=:1", "HOME=/home/a", "DISPLAY=:7", "XAUTHORITY=/x/auth"}
	want := HostDisplay{Display: ":7", Xauthority: "/x/auth"}
	if got := hostDisplay(env); got != want {
		t.Errorf("hostDisplay(%q) = %+v, want %+v", env, got, want)
	}
	env = []string{"DISPLAY=:2", "HOME=/home/a"}
	want = HostDisplayFrom(func(k string) string { return map[string]string{"DISPLAY": ":2", "HOME": "/home/a"}[k] })
	if got := hostDisplay(env); got != want || got.Xauthority != "/home/a/.Xauthority" {
		t.Errorf("hostDisplay(%q) = %+v, want %+v", env, got, want)
	}
}

// TestDescribeMemory: --dry-run says where the memory limit would be held
// besides RLIMIT_DATA, as ProbeMemory found it.
func TestDescribeMemory(t *testing.T) {
	p := testProfile(t, "web", "host = \"local\"\ncommand = [\"xterm\"]\nscreen = \"800x600\"\nresizeable = false\n")
	for _, tc := range []struct{ probe, want string }{
		{"", ""},
		{"none", "memory:   RLIMIT_DATA alone: no way to the user's systemd and no memory cgroup this user can write\n"},
		{"a systemd user scope if the user's systemd answers on the session bus unix:path=/run/user/1/bus, else a cgroup v1 memory leaf in /sys/fs/cgroup/memory/u",
			"memory:   the same 285 MiB (swap included where the kernel accounts it) in a systemd user scope if the user's systemd answers on the session bus unix:path=/run/user/1/bus, else a cgroup v1 memory leaf in /sys/fs/cgroup/memory/u; RLIMIT_DATA stays as the backstop\n"},
	} {
		pl, err := NewPlan(p, nil, Facts{RuntimeRoot: "/run/user/1/xvmview", Memory: tc.probe})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := pl.Describe(&b); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); tc.want != "" && !strings.Contains(got, tc.want) || tc.want == "" && strings.Contains(got, "memory:") {
			t.Errorf("probe %q: dry run\n%s\nwant the line %q", tc.probe, got, tc.want)
		}
	}
	// This machine, as the CLI asks.
	env := []string{"XDG_RUNTIME_DIR=" + t.TempDir()}
	if got := ProbeMemory(env); got == "" || strings.Contains(got, "systemd") {
		t.Errorf("ProbeMemory without a bus = %q, want the cgroups alone or none", got)
	}
	if got := ProbeMemory(append(env, "DBUS_SESSION_BUS_ADDRESS=unix:path=/x/bus")); !strings.HasPrefix(got, "a systemd user scope if the user's systemd answers on the session bus unix:path=/x/bus") {
		t.Errorf("ProbeMemory with a bus = %q", got)
	}
}
