package guest

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kevinburke/ssh_config"
)

// Target is a resolved guest: where to connect, as whom, with which keys, and
// which known_hosts files vouch for its host key.
type Target struct {
	Alias           string   // the name the user gave (ssh_config Host pattern match)
	HostName        string   // what to connect to (ssh_config HostName, else Alias)
	Port            int      // TCP port
	User            string   // remote user
	IdentityFiles   []string // private keys to try after the agent, in order
	KnownHostsFiles []string // known_hosts files; missing files count as empty

	// GlobalKnownHostsFiles also vouch for host keys (GlobalKnownHostsFile);
	// missing files count as empty. New keys go to KnownHostsFiles[0].
	GlobalKnownHostsFiles []string `json:",omitempty"`
	// CertificateFiles are certificates offered with the matching keys
	// (CertificateFile), besides each identity's FILE-cert.pub.
	CertificateFiles []string `json:",omitempty"`
	// IdentitiesOnly offers only IdentityFiles and CertificateFiles, agent
	// keys included only when they are one of those.
	IdentitiesOnly bool `json:",omitempty"`
	// IdentityAgent is the agent socket (IdentityAgent): "" means
	// $SSH_AUTH_SOCK, "none" no agent.
	IdentityAgent string `json:",omitempty"`
	// Network is "tcp", "tcp4" or "tcp6" (AddressFamily); "" means "tcp".
	Network string `json:",omitempty"`
	// ConnectTimeout bounds the connection and handshake to each hop; 0:
	// only the caller's context.
	ConnectTimeout time.Duration `json:",omitempty"`
	// ServerAliveInterval and ServerAliveCountMax (0: Dial's defaults).
	ServerAliveInterval time.Duration `json:",omitempty"`
	ServerAliveCountMax int           `json:",omitempty"`
	// StrictHostKeyChecking "yes" never asks about an unknown host key;
	// anything else lets a DialOptions.Prompt ask the user, who must say yes.
	StrictHostKeyChecking string `json:",omitempty"`
	// BatchMode: never ask the user anything (passphrases, host keys).
	BatchMode bool `json:",omitempty"`
	// HashKnownHosts: a host key the user accepts is recorded hashed.
	HashKnownHosts bool `json:",omitempty"`
	// ProxyCommand, with its % tokens expanded, runs locally through sh -c
	// and its stdin and stdout are the connection to the guest (or to the
	// first jump host).
	ProxyCommand string `json:",omitempty"`
	// Jumps are the ProxyJump hosts in the order they are connected
	// through: Jumps[0] is dialled first (through its own ProxyCommand, if
	// any), every later hop and finally the guest through the hop before.
	Jumps []Target `json:",omitempty"`
	// Settings are the ssh_config values in effect, for `xvmview check`.
	Settings []Setting `json:",omitempty"`
}

// Setting is one ssh_config option as resolved: its keyword, value and where
// it was set ("FILE:LINE"; "" for a default or when unknown).
type Setting struct {
	Key, Value, Source string
}

// Addr returns "host:port" for the target.
func (t Target) Addr() string {
	return joinHostPort(t.HostName, t.Port)
}

// Overrides are values from the profile; set fields win over ssh_config.
type Overrides struct {
	User         string
	Port         int
	IdentityFile string // replaces every IdentityFile from ssh_config and the defaults
}

// Config says where Resolve finds the user's SSH files. The zero value means
// the usual places.
type Config struct {
	// SSHConfigFile is the only ssh_config file read, like `ssh -F`. ""
	// means HOME/.ssh/config and then the system's file, as ssh reads
	// them (only the former when Home or $HOME is not the account's home
	// directory, which is where ssh looks); a missing file is fine.
	SSHConfigFile  string
	UserKnownHosts string // default HOME/.ssh/known_hosts; ssh_config's UserKnownHostsFile wins
	Home           string // default Getenv("HOME"), else os.UserHomeDir()
	// Getenv is the caller's environment: HOME, SSH_AUTH_SOCK (the agent
	// when ssh_config names no IdentityAgent: it goes into the Target,
	// "none" when unset) and ${VAR} in IdentityAgent. nil: the process's,
	// read by Dial when it connects.
	Getenv func(string) string `json:"-"`
	// Environ is the environment `ssh -G` runs in (it expands variables
	// in the config); nil: the process's.
	Environ func() []string `json:"-"`
	// SSH is the OpenSSH client whose `ssh -G` resolves the options: ""
	// looks for ssh in PATH, "none" never uses it (then the built-in
	// reader serves: Host blocks, Include, Match host and all only).
	SSH string
}

// maxJumpDepth bounds ProxyJump chains, whose hops may have ProxyJumps of
// their own.
const maxJumpDepth = 8

// Resolve works out how to reach host the way ssh(1) would from the user's
// ssh_config, with ov winning over the file. host may be "user@alias".
//
// Where the OpenSSH client is installed it asks `ssh -G` (with -l and -p for
// the profile's user and port), which applies Include, Match, Host patterns
// and negations and tokens exactly as ssh does; otherwise it reads the file
// itself (Host blocks, Include, Match host/all). It honours HostName, User,
// Port, IdentityFile, CertificateFile, IdentitiesOnly, IdentityAgent,
// UserKnownHostsFile, GlobalKnownHostsFile, HashKnownHosts,
// StrictHostKeyChecking, BatchMode, AddressFamily, ConnectTimeout,
// ServerAliveInterval, ServerAliveCountMax, ProxyJump (each hop resolved
// the same way) and ProxyCommand. IdentityFile, CertificateFile and
// UserKnownHostsFile values have ~ and the tokens %d %u %h %r %p %n %l %i
// %L %% expanded. Forwardings, ControlMaster and the algorithm lists do not
// apply to xvmview's connection.
//
// It returns an error when the ssh_config cannot be read or parsed (ssh's
// own complaint), for an option that changes how the connection is made and
// that xvmview cannot honour (HostKeyAlias, BindAddress, BindInterface,
// CanonicalizeHostname, ProxyUseFdpass, PKCS11Provider, RevokedHostKeys,
// KnownHostsCommand; the error names
// it), for a port out of range, and for unknown % tokens.
func Resolve(host string, ov Overrides, cfg Config) (Target, error) {
	return resolve(host, ov, cfg, 0, true)
}

func resolve(host string, ov Overrides, cfg Config, depth int, proxies bool) (Target, error) {
	if host == "" {
		return Target{}, errors.New("empty guest host name")
	}
	if depth > maxJumpDepth {
		return Target{}, fmt.Errorf("ProxyJump chain to %s is longer than %d hops (a loop?)", host, maxJumpDepth)
	}
	getenv := os.Getenv
	if cfg.Getenv != nil {
		getenv = cfg.Getenv
	}
	home := cmp.Or(cfg.Home, getenv("HOME"))
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return Target{}, fmt.Errorf("find home directory: %w", err)
		}
		home = h
	}
	localUser := ""
	if u, err := user.Current(); err == nil {
		localUser = u.Username
	}

	userAt, alias := "", host
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		userAt, alias = host[:i], host[i+1:]
	}
	if alias == "" {
		return Target{}, fmt.Errorf("guest %q has no host name", host)
	}
	if err := shellSafeName(alias, "'`\"$\\;&<>|(){}"); err != nil {
		return Target{}, fmt.Errorf("invalid guest host name %q: %w", alias, err)
	}

	if ov.Port < 0 || ov.Port > 65535 {
		return Target{}, fmt.Errorf("invalid port \"%d\" for guest %s in the profile: want 1-65535", ov.Port, alias)
	}
	cfgPath := userConfigPath(cfg, home)
	wantUser := cmp.Or(ov.User, userAt)
	if wantUser != "" {
		if err := shellSafeName(wantUser, "'`\";&<>|(){}"); err != nil {
			return Target{}, fmt.Errorf("invalid user name %q for guest %s: %w", wantUser, alias, err)
		}
	}
	var (
		set     sshSettings
		blocks  []appliedBlock
		fromSSH bool
		err     error
	)
	if sshPath := findSSH(cfg); sshPath != "" {
		fileArg := ""
		// ssh reads ~/.ssh/config from the account's home; xvmview follows
		// $HOME, so when that is elsewhere, only that file is read.
		if cfg.SSHConfigFile != "" || cfg.Home != "" || home != sshHome() {
			fileArg = cfgPath
			if _, err := os.ReadFile(cfgPath); errors.Is(err, fs.ErrNotExist) {
				fileArg = os.DevNull
			} else if err != nil {
				return Target{}, fmt.Errorf("read ssh config: %w", err)
			}
		}
		var extra []string
		if !proxies {
			extra = []string{"ProxyJump=none", "ProxyCommand=none"}
		}
		var env []string
		if cfg.Environ != nil {
			env = cfg.Environ()
		}
		set, blocks, err = runSSHG(sshPath, sshGArgs(fileArg, wantUser, ov.Port, extra, alias), env)
		if err != nil {
			return Target{}, fmt.Errorf("guest %s: %w", alias, err)
		}
		fromSSH = true
	} else {
		if set, err = fallbackSettings(cfgPath, alias); err != nil {
			return Target{}, err
		}
		if !proxies {
			delete(set, "proxyjump")
			delete(set, "proxycommand")
		}
	}
	where := func(key string) string {
		if fromSSH {
			return "in your ssh config"
		}
		return "in " + cfgPath
	}

	for _, k := range []struct{ key, name, off string }{
		{"hostkeyalias", "HostKeyAlias", ""},
		{"bindaddress", "BindAddress", ""},
		{"bindinterface", "BindInterface", ""},
		{"pkcs11provider", "PKCS11Provider", "none"},
		{"canonicalizehostname", "CanonicalizeHostname", "false"},
		{"proxyusefdpass", "ProxyUseFdpass", "no"},
		// Host keys: ignoring a revocation list would trust a revoked
		// key; a KnownHostsCommand's keys would be refused unasked.
		{"revokedhostkeys", "RevokedHostKeys", "none"},
		{"knownhostscommand", "KnownHostsCommand", "none"},
	} {
		v := set.get(k.key)
		if v == "" || strings.EqualFold(v, k.off) || (k.off == "false" && strings.EqualFold(v, "no")) || (k.off == "no" && strings.EqualFold(v, "false")) {
			continue
		}
		return Target{}, fmt.Errorf("%s %s for %s %s is not supported by xvmview: remove it for this host or give the guest's address directly", k.name, v, alias, where(k.key))
	}

	t := Target{Alias: alias, HostName: alias, Port: 22}
	if v := set.get("hostname"); v != "" {
		// HostName accepts %h (and %%) only; ssh -G has expanded it.
		t.HostName = strings.ReplaceAll(strings.ReplaceAll(v, "%h", alias), "%%", "%")
		if fromSSH {
			t.HostName = v
		}
	}

	t.User = localUser
	if v := set.get("user"); v != "" {
		t.User = v
	}
	if userAt != "" {
		t.User = userAt
	}
	if ov.User != "" {
		t.User = ov.User
	}
	if t.User == "" {
		return Target{}, fmt.Errorf("no user for guest %s: set User in %s or in the profile", alias, cfgPath)
	}

	portSrc, portFrom := "22", ""
	if v := set.get("port"); v != "" {
		portSrc, portFrom = v, " "+where("port")
	}
	if ov.Port != 0 {
		portSrc, portFrom = strconv.Itoa(ov.Port), " in the profile"
	}
	p, err := strconv.Atoi(portSrc)
	if err != nil || p < 1 || p > 65535 {
		return Target{}, fmt.Errorf("invalid port %q for guest %s%s: want 1-65535", portSrc, alias, portFrom)
	}
	t.Port = p

	tok := tokens{home: home, localUser: localUser, host: t.HostName, user: t.User, port: t.Port, alias: alias,
		jump: set.get("proxyjump")}
	var ids []string
	switch {
	case ov.IdentityFile != "":
		ids = []string{ov.IdentityFile}
	case fromSSH && slices.Equal(set["identityfile"], defaultIdentities):
	default:
		ids = set["identityfile"]
	}
	for _, id := range ids {
		if strings.EqualFold(id, "none") {
			continue
		}
		p, err := tok.expand(id)
		if err != nil {
			return Target{}, fmt.Errorf("IdentityFile %q for %s: %w", id, alias, err)
		}
		t.IdentityFiles = append(t.IdentityFiles, p)
	}
	if len(ids) == 0 {
		// OpenSSH's defaults that x/crypto/ssh can use, in OpenSSH's order.
		for _, name := range []string{"id_rsa", "id_ecdsa", "id_ed25519"} {
			p := filepath.Join(home, ".ssh", name)
			if _, err := os.Stat(p); err == nil {
				t.IdentityFiles = append(t.IdentityFiles, p)
			}
		}
	}
	for _, c := range set["certificatefile"] {
		if strings.EqualFold(c, "none") {
			continue
		}
		p, err := tok.expand(c)
		if err != nil {
			return Target{}, fmt.Errorf("CertificateFile %q for %s: %w", c, alias, err)
		}
		t.CertificateFiles = append(t.CertificateFiles, p)
	}

	khs := set.get("userknownhostsfile")
	if fromSSH && khs == filepath.Join(sshHome(), ".ssh", "known_hosts")+" "+filepath.Join(sshHome(), ".ssh", "known_hosts2") {
		khs = "" // ssh's default
	}
	if khs == "" {
		kh := cfg.UserKnownHosts
		if kh == "" {
			kh = filepath.Join(home, ".ssh", "known_hosts")
		}
		t.KnownHostsFiles = []string{kh}
	} else {
		for _, f := range strings.Fields(khs) {
			if strings.EqualFold(f, "none") {
				continue
			}
			p, err := tok.expand(f)
			if err != nil {
				return Target{}, fmt.Errorf("UserKnownHostsFile %q for %s: %w", f, alias, err)
			}
			t.KnownHostsFiles = append(t.KnownHostsFiles, p)
		}
	}
	for _, f := range strings.Fields(set.get("globalknownhostsfile")) {
		if strings.EqualFold(f, "none") || f == os.DevNull {
			continue
		}
		p, err := tok.expand(f)
		if err != nil {
			return Target{}, fmt.Errorf("GlobalKnownHostsFile %q for %s: %w", f, alias, err)
		}
		t.GlobalKnownHostsFiles = append(t.GlobalKnownHostsFiles, p)
	}

	t.IdentitiesOnly = yes(set.get("identitiesonly"))
	t.BatchMode = yes(set.get("batchmode"))
	t.HashKnownHosts = yes(set.get("hashknownhosts"))
	switch v := strings.ToLower(set.get("stricthostkeychecking")); v {
	case "true":
		t.StrictHostKeyChecking = "yes"
	case "false":
		t.StrictHostKeyChecking = "no"
	default:
		t.StrictHostKeyChecking = v
	}
	if v := set.get("identityagent"); v != "" && !strings.EqualFold(v, "SSH_AUTH_SOCK") {
		if strings.EqualFold(v, "none") {
			t.IdentityAgent = "none"
		} else if strings.HasPrefix(v, "$") {
			t.IdentityAgent = getenv(strings.Trim(v[1:], "{}"))
			if t.IdentityAgent == "" {
				t.IdentityAgent = "none"
			}
		} else if t.IdentityAgent, err = tok.expand(v); err != nil {
			return Target{}, fmt.Errorf("IdentityAgent %q for %s: %w", v, alias, err)
		}
	}
	if t.IdentityAgent == "" && cfg.Getenv != nil {
		// The caller's agent, not the process's (Dial reads "" from it).
		if t.IdentityAgent = cfg.Getenv("SSH_AUTH_SOCK"); t.IdentityAgent == "" {
			t.IdentityAgent = "none"
		}
	}
	switch strings.ToLower(set.get("addressfamily")) {
	case "inet":
		t.Network = "tcp4"
	case "inet6":
		t.Network = "tcp6"
	}
	if t.ConnectTimeout, err = seconds(set.get("connecttimeout"), "ConnectTimeout", alias); err != nil {
		return Target{}, err
	}
	if t.ServerAliveInterval, err = seconds(set.get("serveraliveinterval"), "ServerAliveInterval", alias); err != nil {
		return Target{}, err
	}
	if v := set.get("serveralivecountmax"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return Target{}, fmt.Errorf("invalid ServerAliveCountMax %q for %s: want a number", v, alias)
		}
		t.ServerAliveCountMax = n
	}

	if pc := set.get("proxycommand"); pc != "" && !strings.EqualFold(pc, "none") {
		if t.ProxyCommand, err = tok.expand(pc); err != nil {
			return Target{}, fmt.Errorf("ProxyCommand %q for %s: %w", pc, alias, err)
		}
		t.ProxyCommand = strings.TrimPrefix(t.ProxyCommand, "exec ")
	}
	if pj := set.get("proxyjump"); pj != "" && !strings.EqualFold(pj, "none") {
		t.ProxyCommand = ""
		hops := strings.Split(pj, ",")
		for i, h := range hops {
			hopHost, hopPort, err := parseJump(h)
			if err != nil {
				return Target{}, fmt.Errorf("ProxyJump %q for %s: %w", pj, alias, err)
			}
			// As ssh -J does: the first hop is reached the way its own
			// config says, each later one through the hop before it.
			hop, err := resolve(hopHost, Overrides{Port: hopPort}, cfg, depth+1, i == 0)
			if err != nil {
				return Target{}, fmt.Errorf("jump host %s of %s: %w", h, alias, err)
			}
			inner := hop.Jumps
			hop.Jumps, hop.Settings = nil, nil
			t.Jumps = append(append(t.Jumps, inner...), hop)
		}
	}
	t.Settings = settingsOf(set, blocks)
	return t, nil
}

// shellSafeName checks a host or user name given by the profile or the
// command line as OpenSSH 9.6 does (valid_hostname, valid_ruser): both end
// up in the user's ProxyCommand (%h %n %r, which runs through sh -c) and in
// Match exec commands, so a name with shell syntax in it would run code on
// this machine (CVE-2023-51385). Names from the user's own ssh_config
// (HostName, User) are not checked, as by ssh.
func shellSafeName(s, bad string) error {
	if strings.HasPrefix(s, "-") {
		return errors.New("starts with '-'")
	}
	for i, r := range s {
		switch {
		case strings.ContainsRune(bad, r):
			return fmt.Errorf("has the shell character %q", r)
		case r < 0x20 || r == 0x7f || unicode.IsSpace(r):
			return errors.New("has a space or control character")
		case r == '\\' && i == len(s)-1:
			return errors.New("ends in a backslash")
		}
	}
	return nil
}

// parseJump splits one ProxyJump hop, [user@]host[:port] or
// ssh://[user@]host[:port], into the host (with user@) and port (0: none).
func parseJump(h string) (string, int, error) {
	h = strings.TrimPrefix(strings.TrimSpace(h), "ssh://")
	userAt := ""
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		userAt, h = h[:i+1], h[i+1:]
	}
	host, port := h, 0
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("hop %q: missing ]", h)
		}
		host = h[1:end]
		if rest := h[end+1:]; rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", 0, fmt.Errorf("hop %q: junk after ]", h)
			}
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return "", 0, fmt.Errorf("hop %q: invalid port %q", h, p)
			}
			port = n
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		n, err := strconv.Atoi(h[i+1:])
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("hop %q: invalid port %q", h, h[i+1:])
		}
		host, port = h[:i], n
	}
	if host == "" {
		return "", 0, fmt.Errorf("hop %q has no host name", h)
	}
	return userAt + host, port, nil
}

func yes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true":
		return true
	}
	return false
}

// seconds reads a time in ssh_config's form: "none", seconds, or a time
// with units (ssh -G prints seconds).
func seconds(v, name, alias string) (time.Duration, error) {
	if v == "" || strings.EqualFold(v, "none") {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(strings.ToLower(v))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid %s %q for %s: want seconds", name, v, alias)
	}
	return d, nil
}

// shownSettings are the options `xvmview check` lists.
var shownSettings = []string{"hostname", "user", "port", "identityfile", "certificatefile", "identitiesonly",
	"identityagent", "userknownhostsfile", "globalknownhostsfile", "stricthostkeychecking", "hashknownhosts",
	"batchmode", "addressfamily", "connecttimeout", "serveraliveinterval", "serveralivecountmax", "proxyjump",
	"proxycommand"}

func settingsOf(set sshSettings, blocks []appliedBlock) []Setting {
	src := sources(blocks, shownSettings)
	var out []Setting
	for _, k := range shownSettings {
		for _, v := range set[k] {
			out = append(out, Setting{Key: k, Value: v, Source: src[k]})
		}
	}
	return out
}

// sshHome is the home directory ssh(1) expands ~ with: the user's
// password-database entry.
func sshHome() string {
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}

func loadSSHConfig(path string) (*ssh_config.Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ssh config: %w", err)
	}
	defer f.Close()
	c, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("read ssh config %s: %w", path, err)
	}
	return c, nil
}

// tokens expands ~ and ssh_config % tokens in file names.
type tokens struct {
	home, localUser, host, user, alias, jump string
	port                                     int
}

func (t tokens) expand(s string) (string, error) {
	if s == "~" {
		s = t.home
	} else if strings.HasPrefix(s, "~/") {
		s = filepath.Join(t.home, s[2:])
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("% at the end")
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'd':
			b.WriteString(t.home)
		case 'u':
			b.WriteString(t.localUser)
		case 'h':
			b.WriteString(t.host)
		case 'r':
			b.WriteString(t.user)
		case 'p':
			b.WriteString(strconv.Itoa(t.port))
		case 'n':
			b.WriteString(t.alias)
		case 'l', 'L':
			h, err := os.Hostname()
			if err != nil {
				return "", fmt.Errorf("expand %%l: %w", err)
			}
			if s[i] == 'L' {
				h, _, _ = strings.Cut(h, ".")
			}
			b.WriteString(h)
		case 'i':
			b.WriteString(strconv.Itoa(os.Getuid()))
		case 'k':
			b.WriteString(t.alias)
		case 'j':
			b.WriteString(t.jump)
		default:
			return "", fmt.Errorf("unsupported token %%%c", s[i])
		}
	}
	return b.String(), nil
}
