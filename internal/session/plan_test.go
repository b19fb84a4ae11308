package session

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
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
			p:     remote,
			facts: Facts{Guest: target},
			check: func(t *testing.T, pl Plan) {
				if !pl.Xephyr.ListenTCP {
					t.Error("tcp transport without -listen tcp")
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
	p := testProfile(t, "web", `host = "web"
command = ["firefox", "it's; rm -rf ~"]
window_manager = ["twm"]`)
	pl, err := NewPlan(p, nil, Facts{RuntimeRoot: "/run/user/1/xvmview", Guest: &guest.Target{Alias: "web", HostName: "10.1.0.2", Port: 2222, User: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := pl.Describe(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"-displayfd 3", "-auth /run/user/1/xvmview/SESSION/server.xauth", "-reset", "-terminate", "-listen tcp",
		"-title '[web] firefox on web'", "-name xvmview-web",
		"alice@10.1.0.2 port 2222",
		"xauth -q nmerge -", "<redacted>",
		`firefox 'it'\''s; rm -rf ~'`,
		"xauth -q remove :N",
		"in clear",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
}
