package guest

import (
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testSSHConfig = `# test config
Host myguest
    HostName 10.0.0.2
    Port 2222
    User alice
    IdentityFile ~/.ssh/guest_key
    IdentityFile %d/keys/%r@%h:%p
    UserKnownHostsFile ~/kh1 %d/kh2

Host other
    HostName %h.example.org

Host jump
    ProxyJump bastion

Host badport
    Port 99999

Host badtoken
    IdentityFile ~/%z

Host *
    User fallback
`

func TestResolve(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Only id_ed25519 and id_rsa exist: the defaults list those.
	for _, n := range []string{"id_ed25519", "id_rsa"} {
		if err := os.WriteFile(filepath.Join(home, ".ssh", n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfgFile, []byte(testSSHConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{SSHConfigFile: cfgFile, Home: home}
	defaultIDs := []string{filepath.Join(home, ".ssh", "id_ed25519"), filepath.Join(home, ".ssh", "id_rsa")}
	defaultKH := []string{filepath.Join(home, ".ssh", "known_hosts")}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}

	myguest := Target{
		Alias: "myguest", HostName: "10.0.0.2", Port: 2222, User: "alice",
		IdentityFiles:   []string{filepath.Join(home, ".ssh", "guest_key"), home + "/keys/alice@10.0.0.2:2222"},
		KnownHostsFiles: []string{filepath.Join(home, "kh1"), home + "/kh2"},
	}
	tests := []struct {
		name string
		host string
		ov   Overrides
		cfg  Config
		want Target
	}{
		{"alias", "myguest", Overrides{}, cfg, myguest},
		{"overrides win", "myguest", Overrides{User: "bob", Port: 2200, IdentityFile: "~/profile_key"}, cfg, Target{
			Alias: "myguest", HostName: "10.0.0.2", Port: 2200, User: "bob",
			IdentityFiles:   []string{filepath.Join(home, "profile_key")},
			KnownHostsFiles: myguest.KnownHostsFiles,
		}},
		{"user@alias", "carol@myguest", Overrides{}, cfg, func() Target {
			tg := myguest
			tg.User = "carol"
			tg.IdentityFiles = []string{myguest.IdentityFiles[0], home + "/keys/carol@10.0.0.2:2222"}
			return tg
		}()},
		{"unlisted host gets defaults", "10.1.2.3", Overrides{}, cfg, Target{
			Alias: "10.1.2.3", HostName: "10.1.2.3", Port: 22, User: "fallback",
			IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
		}},
		{"HostName with %h", "other", Overrides{}, cfg, Target{
			Alias: "other", HostName: "other.example.org", Port: 22, User: "fallback",
			IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
		}},
		{"configured known_hosts", "other", Overrides{}, Config{SSHConfigFile: cfgFile, Home: home, UserKnownHosts: "/x/kh"}, Target{
			Alias: "other", HostName: "other.example.org", Port: 22, User: "fallback",
			IdentityFiles: defaultIDs, KnownHostsFiles: []string{"/x/kh"},
		}},
		{"missing config file", "myguest", Overrides{}, Config{SSHConfigFile: filepath.Join(home, "nope"), Home: home}, Target{
			Alias: "myguest", HostName: "myguest", Port: 22, User: me.Username,
			IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.host, tt.ov, tt.cfg)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.host, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%q) =\n%+v\nwant\n%+v", tt.host, got, tt.want)
			}
		})
	}

	errTests := []struct {
		name, host string
		ov         Overrides
		wantErr    string
	}{
		{"ProxyJump", "jump", Overrides{}, "ProxyJump for jump in " + cfgFile + " is not supported"},
		{"port out of range", "badport", Overrides{}, `invalid port "99999" for guest badport in ` + cfgFile},
		{"override port out of range", "myguest", Overrides{Port: 70000}, `invalid port "70000" for guest myguest in the profile`},
		{"unknown token", "badtoken", Overrides{}, "unsupported token %z"},
		{"empty host", "", Overrides{}, "empty guest host name"},
		{"user only", "bob@", Overrides{}, "has no host name"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.host, tt.ov, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve(%q) = %+v, %v; want error containing %q", tt.host, got, err, tt.wantErr)
			}
		})
	}
}

func TestResolveUnreadableConfig(t *testing.T) {
	cfgFile := t.TempDir() // a directory: open works, read fails
	_, err := Resolve("a", Overrides{}, Config{SSHConfigFile: cfgFile, Home: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), cfgFile) {
		t.Fatalf("Resolve with an unreadable config = %v, want an error naming %s", err, cfgFile)
	}
}
