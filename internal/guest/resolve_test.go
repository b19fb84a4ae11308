package guest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
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
    ProxyJump bastion,carol@b2:2200

Host bastion
    HostName 10.9.9.9
    User jim
    ProxyCommand nc %h %p

Host b2
    ProxyJump nowhere

Host proxied
    HostName 10.0.0.3
    ProxyCommand exec nc -q0 %h %p via %r
    ConnectTimeout 7
    ServerAliveInterval 9
    ServerAliveCountMax 2
    IdentitiesOnly yes
    CertificateFile ~/.ssh/c-cert.pub
    AddressFamily inet
    BatchMode yes
    HashKnownHosts yes
    StrictHostKeyChecking yes

Host !nomatch neg*
    User negated

Host *
    User fallback
`

// backends are the ways Resolve can read ssh_config: through `ssh -G`
// (when the OpenSSH client is here; CI=true requires it) and its own reader.
func backends(t *testing.T) []string {
	if _, err := exec.LookPath("ssh"); err != nil {
		if testguest.CI() {
			testguest.Missing(t, "program ssh", "install the openssh-client package")
		}
		return []string{"none"}
	}
	return []string{"", "none"}
}

// essentials is the part of a Target the table compares.
type essentials struct {
	Alias, HostName string
	Port            int
	User            string
	IdentityFiles   []string
	KnownHostsFiles []string
	ProxyCommand    string
	Jumps           []string
}

func essentialsOf(t Target) essentials {
	e := essentials{t.Alias, t.HostName, t.Port, t.User, t.IdentityFiles, t.KnownHostsFiles, t.ProxyCommand, nil}
	for _, j := range t.Jumps {
		e.Jumps = append(e.Jumps, j.User+"@"+j.Addr()+" "+j.ProxyCommand)
	}
	return e
}

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
	defaultIDs := []string{filepath.Join(home, ".ssh", "id_rsa"), filepath.Join(home, ".ssh", "id_ed25519")}
	defaultKH := []string{filepath.Join(home, ".ssh", "known_hosts")}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range backends(t) {
		t.Run("ssh="+backend, func(t *testing.T) {
			cfg := Config{SSHConfigFile: cfgFile, Home: home, SSH: backend}
			// ssh -G expands ~ and %d in UserKnownHostsFile with the
			// account's home, as ssh does.
			khHome := home
			if backend == "" {
				khHome = sshHome()
			}
			myguest := essentials{
				Alias: "myguest", HostName: "10.0.0.2", Port: 2222, User: "alice",
				IdentityFiles:   []string{filepath.Join(home, ".ssh", "guest_key"), home + "/keys/alice@10.0.0.2:2222"},
				KnownHostsFiles: []string{filepath.Join(khHome, "kh1"), khHome + "/kh2"},
			}
			tests := []struct {
				name string
				host string
				ov   Overrides
				cfg  Config
				want essentials
			}{
				{"alias", "myguest", Overrides{}, cfg, myguest},
				{"overrides win", "myguest", Overrides{User: "bob", Port: 2200, IdentityFile: "~/profile_key"}, cfg, essentials{
					Alias: "myguest", HostName: "10.0.0.2", Port: 2200, User: "bob",
					IdentityFiles:   []string{filepath.Join(home, "profile_key")},
					KnownHostsFiles: myguest.KnownHostsFiles,
				}},
				{"user@alias", "carol@myguest", Overrides{}, cfg, func() essentials {
					tg := myguest
					tg.User = "carol"
					tg.IdentityFiles = []string{myguest.IdentityFiles[0], home + "/keys/carol@10.0.0.2:2222"}
					return tg
				}()},
				{"unlisted host gets defaults", "10.1.2.3", Overrides{}, cfg, essentials{
					Alias: "10.1.2.3", HostName: "10.1.2.3", Port: 22, User: "fallback",
					IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
				}},
				{"negated pattern", "negx", Overrides{}, cfg, essentials{
					Alias: "negx", HostName: "negx", Port: 22, User: "negated",
					IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
				}},
				{"HostName with %h", "other", Overrides{}, cfg, essentials{
					Alias: "other", HostName: "other.example.org", Port: 22, User: "fallback",
					IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
				}},
				{"configured known_hosts", "other", Overrides{}, Config{SSHConfigFile: cfgFile, Home: home, UserKnownHosts: "/x/kh", SSH: backend}, essentials{
					Alias: "other", HostName: "other.example.org", Port: 22, User: "fallback",
					IdentityFiles: defaultIDs, KnownHostsFiles: []string{"/x/kh"},
				}},
				{"missing config file", "myguest", Overrides{}, Config{SSHConfigFile: filepath.Join(home, "nope"), Home: home, SSH: backend}, essentials{
					Alias: "myguest", HostName: "myguest", Port: 22, User: me.Username,
					IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
				}},
				{"ProxyJump: the first hop's own ProxyCommand, the second's ProxyJump ignored", "jump", Overrides{}, cfg, essentials{
					Alias: "jump", HostName: "jump", Port: 22, User: "fallback",
					IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
					Jumps: []string{"jim@10.9.9.9:22 nc 10.9.9.9 22", "carol@b2:2200 "},
				}},
				{"ProxyCommand tokens", "proxied", Overrides{User: "u"}, cfg, essentials{
					Alias: "proxied", HostName: "10.0.0.3", Port: 22, User: "u",
					IdentityFiles: defaultIDs, KnownHostsFiles: defaultKH,
					ProxyCommand: "nc -q0 10.0.0.3 22 via u",
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := Resolve(tt.host, tt.ov, tt.cfg)
					if err != nil {
						t.Fatalf("Resolve(%q): %v", tt.host, err)
					}
					if !reflect.DeepEqual(essentialsOf(got), tt.want) {
						t.Errorf("Resolve(%q) =\n%+v\nwant\n%+v", tt.host, essentialsOf(got), tt.want)
					}
				})
			}

			t.Run("options", func(t *testing.T) {
				got, err := Resolve("proxied", Overrides{}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if got.ConnectTimeout != 7*time.Second || got.ServerAliveInterval != 9*time.Second || got.ServerAliveCountMax != 2 ||
					!got.IdentitiesOnly || !got.BatchMode || !got.HashKnownHosts || got.StrictHostKeyChecking != "yes" || got.Network != "tcp4" ||
					!reflect.DeepEqual(got.CertificateFiles, []string{filepath.Join(home, ".ssh", "c-cert.pub")}) {
					t.Errorf("Resolve(proxied) = %+v", got)
				}
			})

			errTests := []struct {
				name, config, host string
				ov                 Overrides
				wantErr            string
			}{
				{"port out of range", "Host badport\n  Port 99999\n", "badport", Overrides{}, `99999`},
				{"override port out of range", "", "myguest", Overrides{Port: 70000}, `invalid port "70000" for guest myguest in the profile`},
				{"unknown token", "Host badtoken\n  IdentityFile ~/%z\n", "badtoken", Overrides{}, "unsupported token %z"},
				{"unsupported option", "Host aliased\n  HostKeyAlias other\n", "aliased", Overrides{}, "HostKeyAlias other for aliased"},
				{"revoked host keys", "Host revoking\n  RevokedHostKeys /etc/ssh/revoked\n", "revoking", Overrides{}, "RevokedHostKeys /etc/ssh/revoked for revoking"},
				{"known hosts command", "Host khc\n  KnownHostsCommand /bin/true %H\n", "khc", Overrides{}, "KnownHostsCommand /bin/true %H for khc"},
				{"jump loop", "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n", "a", Overrides{}, "ProxyJump chain"},
				{"empty host", "", "", Overrides{}, "empty guest host name"},
				{"user only", "", "bob@", Overrides{}, "has no host name"},
				{"option as host", "", "-oProxyCommand=x", Overrides{}, "starts with '-'"},
			}
			for _, tt := range errTests {
				t.Run(tt.name, func(t *testing.T) {
					f := filepath.Join(t.TempDir(), "config")
					if err := os.WriteFile(f, []byte(tt.config), 0o600); err != nil {
						t.Fatal(err)
					}
					got, err := Resolve(tt.host, tt.ov, Config{SSHConfigFile: f, Home: home, SSH: backend})
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("Resolve(%q) = %+v, %v; want error containing %q", tt.host, got, err, tt.wantErr)
					}
				})
			}
		})
	}
}

// TestResolveOpenSSHOnly: what only `ssh -G` gets right: Include and Match.
func TestResolveOpenSSHOnly(t *testing.T) {
	testguest.NeedProgram(t, "ssh", "openssh-client")
	dir := t.TempDir()
	inc := filepath.Join(dir, "config.d")
	if err := os.Mkdir(inc, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inc, "a.conf"), []byte("Host included\n  HostName 10.7.7.7\n  Port 2022\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgFile, []byte("Include "+inc+"/*.conf\nMatch host matched user mu\n  HostName 10.8.8.8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{SSHConfigFile: cfgFile, Home: dir}
	got, err := Resolve("included", Overrides{}, cfg)
	if err != nil || got.HostName != "10.7.7.7" || got.Port != 2022 {
		t.Errorf("Resolve(included) = %+v, %v; want 10.7.7.7:2022 from the Included file", got, err)
	}
	var src string
	for _, s := range got.Settings {
		if s.Key == "hostname" {
			src = s.Source
		}
	}
	if want := filepath.Join(inc, "a.conf") + ":2"; src != want {
		t.Errorf("HostName comes from %q, want %q", src, want)
	}
	if got, err := Resolve("matched", Overrides{User: "mu"}, cfg); err != nil || got.HostName != "10.8.8.8" {
		t.Errorf("Resolve(matched) = %+v, %v; want the Match block's 10.8.8.8", got, err)
	}
	// The profile's user is what Match user sees.
	if got, err := Resolve("matched", Overrides{User: "other"}, cfg); err != nil || got.HostName != "matched" {
		t.Errorf("Resolve(matched) as other = %+v, %v; want no Match", got, err)
	}
}

func TestResolveUnreadableConfig(t *testing.T) {
	for _, backend := range backends(t) {
		cfgFile := t.TempDir() // a directory: open works, read fails
		_, err := Resolve("a", Overrides{}, Config{SSHConfigFile: cfgFile, Home: t.TempDir(), SSH: backend})
		if err == nil || !strings.Contains(err.Error(), cfgFile) {
			t.Fatalf("Resolve (ssh=%q) with an unreadable config = %v, want an error naming %s", backend, err, cfgFile)
		}
	}
}

// TestResolveHashKnownHosts: whether a host key the user accepts is
// recorded hashed (Dial's prompt, xvmview trust) is ssh_config's
// HashKnownHosts for the guest, first value wins, default no.
func TestResolveHashKnownHosts(t *testing.T) {
	tests := []struct {
		name, config string
		want         bool
	}{
		{"unset", "Host web\n  User u\n", false},
		{"yes", "Host *\n  HashKnownHosts yes\n", true},
		{"first value wins", "Host web\n  HashKnownHosts no\nHost *\n  HashKnownHosts yes\n", false},
		{"another host's block", "Host db\n  HashKnownHosts yes\n", false},
	}
	for _, backend := range backends(t) {
		for _, tt := range tests {
			t.Run("ssh="+backend+"/"+tt.name, func(t *testing.T) {
				cfg := filepath.Join(t.TempDir(), "config")
				if err := os.WriteFile(cfg, []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
				tg, err := Resolve("web", Overrides{}, Config{SSHConfigFile: cfg, Home: t.TempDir(), SSH: backend})
				if err != nil || tg.HashKnownHosts != tt.want {
					t.Errorf("HashKnownHosts = %v (err %v), want %v", tg.HashKnownHosts, err, tt.want)
				}
			})
		}
	}
}

// TestResolveShellNames: a host or user name from a profile never reaches
// the user's ProxyCommand (run through sh -c, %h and %r expanded) or a Match
// exec with shell syntax in it: Resolve refuses it as OpenSSH 9.6 does
// (CVE-2023-51385), whichever backend reads the config.
func TestResolveShellNames(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	evil := "$(touch${IFS}" + mark + ")"
	for _, backend := range backends(t) {
		cfgText := "Host *\n  ProxyCommand echo %h %r\n"
		if backend != "none" { // the built-in reader has no Match exec
			cfgText = "Match exec \"true %h %r\"\n  Port 2200\n" + cfgText
		}
		cfgFile := filepath.Join(dir, "config"+backend)
		if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := Config{SSHConfigFile: cfgFile, Home: dir, SSH: backend}
		for _, c := range []struct {
			host string
			ov   Overrides
		}{
			{"a" + evil, Overrides{}},
			{"a`id`", Overrides{}},
			{"a;id", Overrides{}},
			{"a|id", Overrides{}},
			{"good", Overrides{User: "u" + evil}},
			{"u;id@good", Overrides{}},
			{"good", Overrides{User: "u\\"}},
			{"good", Overrides{User: "-oProxyCommand=id"}},
			{"-oProxyCommand=id", Overrides{}},
		} {
			got, err := Resolve(c.host, c.ov, cfg)
			if err == nil {
				t.Errorf("ssh=%q: Resolve(%q, user %q) = ProxyCommand %q, want an error", backend, c.host, c.ov.User, got.ProxyCommand)
			}
		}
		got, err := Resolve("good", Overrides{User: "ok.user$"}, cfg)
		if err != nil || got.ProxyCommand != "echo good ok.user$" {
			t.Errorf("ssh=%q: Resolve(good) = %q, %v; want ProxyCommand \"echo good ok.user$\"", backend, got.ProxyCommand, err)
		}
	}
	if _, err := os.Stat(mark); err == nil {
		t.Errorf("a host name ran a command on this machine")
	}
}

// TestResolveSSHGHangs: a Match exec command that hangs ends `ssh -G` at
// sshGTimeout, the command with it, although it holds ssh's stderr.
func TestResolveSSHGHangs(t *testing.T) {
	testguest.NeedProgram(t, "ssh", "openssh-client")
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	cfgFile := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgFile, []byte("Match exec \"echo $$ > "+pidFile+"; exec sleep 60\"\n  Port 2200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := sshGTimeout
	sshGTimeout = time.Second
	defer func() { sshGTimeout = old }()
	start := time.Now()
	_, err := Resolve("h", Overrides{}, Config{SSHConfigFile: cfgFile, Home: dir})
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("Resolve with a hanging Match exec = %v, want the timeout's error", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Resolve took %s, want about sshGTimeout (1 s)", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the Match exec command did not run: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(state), ") Z ") {
			break // killed, not yet reaped by init
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the Match exec command %d still runs", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestResolveAgentFromGetenv: with Config.Getenv, the agent socket comes
// from the caller's environment, not the process's.
func TestResolveAgentFromGetenv(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "/process/agent.sock")
	t.Setenv("MYAGENT", "/process/my.sock")
	tests := []struct {
		name, config string
		env          map[string]string
		want         string
	}{
		{"SSH_AUTH_SOCK", "Host web\n  User u\n", map[string]string{"SSH_AUTH_SOCK": "/env/agent.sock"}, "/env/agent.sock"},
		{"no agent in the environment", "Host web\n  User u\n", map[string]string{}, "none"},
		{"IdentityAgent ${VAR}", "Host web\n  IdentityAgent ${MYAGENT}\n", map[string]string{"MYAGENT": "/env/my.sock"}, "/env/my.sock"},
	}
	for _, backend := range backends(t) {
		for _, tt := range tests {
			t.Run("ssh="+backend+"/"+tt.name, func(t *testing.T) {
				cfg := filepath.Join(t.TempDir(), "config")
				if err := os.WriteFile(cfg, []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
				getenv := func(k string) string { return tt.env[k] }
				environ := func() []string {
					l := []string{"PATH=" + os.Getenv("PATH")}
					for k, v := range tt.env {
						l = append(l, k+"="+v)
					}
					return l
				}
				tg, err := Resolve("web", Overrides{}, Config{SSHConfigFile: cfg, Home: t.TempDir(), SSH: backend, Getenv: getenv, Environ: environ})
				if err != nil || tg.IdentityAgent != tt.want {
					t.Errorf("IdentityAgent = %q (err %v), want %q", tg.IdentityAgent, err, tt.want)
				}
			})
		}
	}
}
