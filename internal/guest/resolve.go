package guest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

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
	SSHConfigFile  string // default HOME/.ssh/config; a missing file is fine
	UserKnownHosts string // default HOME/.ssh/known_hosts; ssh_config's UserKnownHostsFile wins
	Home           string // default os.UserHomeDir()
}

// Resolve works out how to reach host the way ssh(1) would from the user's
// ssh_config (Host, HostName, User, Port, IdentityFile, UserKnownHostsFile;
// no Match blocks), with ov winning over the file. host may be "user@alias".
// IdentityFile and UserKnownHostsFile values have ~ and the tokens %d %u %h
// %r %p %n %l %% expanded. Without IdentityFile it uses those of
// ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist.
//
// It returns an error when the ssh_config file exists but cannot be read or
// parsed, when it uses ProxyJump or ProxyCommand (not supported: xvmview would
// silently connect directly), for a port out of range, and for unknown %
// tokens.
func Resolve(host string, ov Overrides, cfg Config) (Target, error) {
	if host == "" {
		return Target{}, errors.New("empty guest host name")
	}
	home := cfg.Home
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

	cfgPath := cfg.SSHConfigFile
	if cfgPath == "" {
		cfgPath = filepath.Join(home, ".ssh", "config")
	}
	sc, err := loadSSHConfig(cfgPath)
	if err != nil {
		return Target{}, err
	}
	get := func(key string) (string, error) {
		if sc == nil {
			return "", nil
		}
		v, err := sc.Get(alias, key)
		if err != nil {
			return "", fmt.Errorf("read %s from %s for %s: %w", key, cfgPath, alias, err)
		}
		return v, nil
	}
	getAll := func(key string) ([]string, error) {
		if sc == nil {
			return nil, nil
		}
		v, err := sc.GetAll(alias, key)
		if err != nil {
			return nil, fmt.Errorf("read %s from %s for %s: %w", key, cfgPath, alias, err)
		}
		return v, nil
	}

	for _, key := range []string{"ProxyJump", "ProxyCommand"} {
		v, err := get(key)
		if err != nil {
			return Target{}, err
		}
		if v != "" && !strings.EqualFold(v, "none") {
			return Target{}, fmt.Errorf("%s for %s in %s is not supported: give the guest's address directly", key, alias, cfgPath)
		}
	}

	t := Target{Alias: alias, HostName: alias, Port: 22}
	if v, err := get("HostName"); err != nil {
		return Target{}, err
	} else if v != "" {
		// HostName accepts %h (and %%) only.
		t.HostName = strings.ReplaceAll(strings.ReplaceAll(v, "%h", alias), "%%", "%")
	}

	t.User = localUser
	if v, err := get("User"); err != nil {
		return Target{}, err
	} else if v != "" {
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
	if v, err := get("Port"); err != nil {
		return Target{}, err
	} else if v != "" {
		portSrc, portFrom = v, " in "+cfgPath
	}
	if ov.Port != 0 {
		portSrc, portFrom = strconv.Itoa(ov.Port), " in the profile"
	}
	p, err := strconv.Atoi(portSrc)
	if err != nil || p < 1 || p > 65535 {
		return Target{}, fmt.Errorf("invalid port %q for guest %s%s: want 1-65535", portSrc, alias, portFrom)
	}
	t.Port = p

	tok := tokens{home: home, localUser: localUser, host: t.HostName, user: t.User, port: t.Port, alias: alias}
	var ids []string
	switch {
	case ov.IdentityFile != "":
		ids = []string{ov.IdentityFile}
	default:
		if ids, err = getAll("IdentityFile"); err != nil {
			return Target{}, err
		}
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
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			p := filepath.Join(home, ".ssh", name)
			if _, err := os.Stat(p); err == nil {
				t.IdentityFiles = append(t.IdentityFiles, p)
			}
		}
	}

	khs, err := get("UserKnownHostsFile")
	if err != nil {
		return Target{}, err
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
	return t, nil
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
	home, localUser, host, user, alias string
	port                               int
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
		case 'l':
			h, err := os.Hostname()
			if err != nil {
				return "", fmt.Errorf("expand %%l: %w", err)
			}
			b.WriteString(h)
		default:
			return "", fmt.Errorf("unsupported token %%%c", s[i])
		}
	}
	return b.String(), nil
}
