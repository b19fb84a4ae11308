package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/session"
)

// TestHintFor: every error the library words for the user gets its hint
// here, in one place, with the profile and display it is about.
func TestHintFor(t *testing.T) {
	unknown := &session.HostKeyError{Alias: "web", Host: "10.0.0.2", Addr: "10.0.0.2:2222", Fingerprint: "SHA256:abc",
		KeyType: "ecdsa-sha2-nistp256", KnownHosts: "/home/a/.ssh/known_hosts"}
	changed := *unknown
	changed.Changed, changed.Line = true, 3
	tests := []struct {
		name string
		err  error
		want []string
		not  []string
	}{
		{"unknown host key", fmt.Errorf("dial: %w", unknown),
			[]string{"ssh-keygen -lf /etc/ssh/ssh_host_ecdsa_key.pub", "`xvmview trust web-prof`"}, []string{"ssh-keyscan", ">>"}},
		{"changed host key", &changed,
			[]string{"this may be an attack", "ssh-keygen -R [10.0.0.2]:2222 -f /home/a/.ssh/known_hosts", "`xvmview trust web-prof`"}, []string{"ssh-keyscan"}},
		{"trust refuses a changed key", &session.KeyChangedError{Err: &changed}, []string{"this may be an attack"}, nil},
		{"Xephyr missing", &session.XephyrNotFoundError{Program: "Xephyr", Package: "xserver-xephyr"},
			[]string{"install it: sudo apt-get install --no-install-recommends xserver-xephyr"}, nil},
		{"Xephyr broken", &session.XephyrBrokenError{Path: "/usr/bin/Xephyr"}, []string{"--reinstall xserver-xephyr"}, nil},
		{"no display", session.NoDisplayError{}, []string{"make demo"}, nil},
		{"host display", &session.HostDisplayError{Display: ":7", Err: errors.New("refused")}, []string{"DISPLAY=:7", "xdpyinfo"}, nil},
		{"Xephyr cannot open the display", &session.XephyrExitError{Display: -1}, []string{"DISPLAY=:5"}, nil},
		{"guest config", &session.GuestConfigError{Profile: "web-prof", Err: errors.New("bad")}, []string{"~/.ssh/config"}, nil},
		{"unreachable", &session.UnreachableError{Addr: "10.0.0.2:22"}, []string{"is the guest running", "10.0.0.2:22"}, nil},
		{"unreachable through a jump host", &session.UnreachableError{Addr: "10.0.0.2:22", Via: "bastion"}, []string{"can jump host bastion reach 10.0.0.2:22", "ssh -G bastion"}, []string{"is the guest running"}},
		{"jump host key unknown", fmt.Errorf("jump host bastion: %w", &session.HostKeyError{Alias: "bastion", Addr: "b:22", KeyType: "ssh-ed25519", Jump: true}),
			[]string{"jump host's own", "`ssh bastion` once"}, []string{"xvmview trust"}},
		{"host key declined", &session.HostKeyError{Alias: "web", Addr: "w:22", KeyType: "ssh-ed25519", Declined: true},
			[]string{"answer yes", "`xvmview trust web-prof`"}, nil},
		{"passphrase", &session.PassphraseError{File: "/k/id", Tries: 3}, []string{"passphrase when asked", "ssh-add /k/id"}, nil},
		{"ProxyCommand", &session.ProxyCommandError{Addr: "g:22", Command: "nc g 22", Exit: "exit status 1"}, []string{"`nc g 22`", "sh -c", "g:22"}, nil},
		{"handshake dropped", &session.HandshakeDroppedError{Addr: "g:22", Tries: 3}, []string{"MaxStartups"}, nil},
		{"auth", &session.AuthError{Addr: "10.0.0.2:22"}, []string{"ssh -v 10.0.0.2:22"}, []string{"ssh-add"}},
		{"auth, key not in the agent", &session.AuthError{Addr: "g:22", Encrypted: []string{"/k/id"}}, []string{"ssh-add /k/id", "ssh -v g:22"}, nil},
		{"profile not found", &profile.NotFoundError{Name: "x"}, []string{"xvmview list"}, nil},
		{"profile", &profile.Error{Source: "x.toml"}, []string{"fix the profile"}, nil},
		{"forwarding refused", &session.ForwardingRefusedError{Addr: "g:22"},
			[]string{"/etc/ssh/sshd_config", `"AllowTcpForwarding yes"`, `"remote"`, "DisableForwarding", `transport = "tcp"`}, nil},
		{"no xauth", &session.NoXauthError{Host: "g"}, []string{"install xauth on the guest"}, nil},
		{"local program", &session.ProgramNotFoundError{Program: "xterm", Key: "command"}, []string{"install xterm, or give its full path in the profile"}, []string{"on the guest"}},
		{"guest program", &session.ProgramNotFoundError{Program: "twm", Key: "window_manager", Host: "g"}, []string{"install twm on the guest", "profile's window_manager"}, nil},
		{"not running", &session.NotRunningError{ID: "x"}, []string{"next 'xvmview run'"}, nil},
		{"incomplete", &session.IncompleteError{ID: "x"}, []string{"retries the cleanup"}, nil},
		{"unsafe dir", &session.UnsafeDirError{Path: "/run/x"}, []string{"remove /run/x", "XDG_RUNTIME_DIR"}, nil},
		{"no session", noSessionError{"web"}, []string{"xvmview ps"}, nil},
		{"guest lost", &session.GuestLostError{Host: "g"}, []string{"run the profile again"}, nil},
		{"guest Xauthority lost", &session.AuthLostError{Host: "g", Dir: "/tmp/xvmview.0123456789", Err: errors.New("the Xauthority keeper exited with status 1")}, []string{"keeper of the session's cookie file", "run the profile again"}, nil},
		{"open display", &session.OpenDisplayError{}, []string{"-auth file"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hintFor(tt.err, "web-prof", ":5")
			if got == "" {
				t.Fatalf("no hint for %v", tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("hint %q lacks %q", got, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("hint %q has %q", got, w)
				}
			}
		})
	}
	if got := hintFor(errors.New("plain"), "", ""); got != "" {
		t.Errorf("hint for a plain error = %q, want none", got)
	}
}

// TestNoLibraryHints: advice lives in hintFor, next to the other hints, so
// that it cannot disagree with them; a Hint method in a library package
// would never be printed.
func TestNoLibraryHints(t *testing.T) {
	files, err := filepath.Glob("../../internal/*/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no library files found (err %v)", err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && fd.Name.Name == "Hint" {
				t.Errorf("%s: %s has a Hint method: put its advice in cmd/xvmview/explain.go", fset.Position(fd.Pos()), f)
			}
		}
	}
}
