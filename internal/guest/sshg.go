package guest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sshSettings holds ssh_config options as ssh -G prints them: lower-case
// keyword to values in order (IdentityFile and CertificateFile repeat).
type sshSettings map[string][]string

func (s sshSettings) get(k string) string {
	if v := s[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// sshGTimeout bounds one `ssh -G`: Match exec may run the user's commands.
var sshGTimeout = 20 * time.Second

// sshGMaxOutput caps what is kept of ssh -G's output and of its -vvv
// debug lines, each (a few KiB for a usual config).
const sshGMaxOutput = 4 << 20

// defaultIdentities is what ssh -G prints for IdentityFile when the config
// names none (OpenSSH 8.x-9.x).
var defaultIdentities = []string{"~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
	"~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa"}

// sshGArgs builds the arguments of `ssh -G`. cfgFile "" lets ssh read the
// user's and the system's files as it does for a login; otherwise only that
// file (/dev/null when it does not exist) is read, as with `ssh -F`.
func sshGArgs(cfgFile, user string, port int, extra []string, dest string) []string {
	args := []string{"-G", "-T"}
	if cfgFile != "" {
		args = append(args, "-F", cfgFile)
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	if port != 0 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	for _, o := range extra {
		args = append(args, "-o", o)
	}
	return append(args, "--", dest)
}

// runSSHG runs `ssh -G` and returns the options OpenSSH resolved, and the
// config files and blocks it applied (from its -v output) for where-from.
// env is its environment (nil: the process's), whose variables ssh expands.
func runSSHG(sshPath string, args, env []string) (sshSettings, []appliedBlock, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sshGTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshPath, append([]string{"-vvv"}, args...)...)
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env[:len(env):len(env)], "LC_ALL=C")
	// Its own process group, all of it ended at the timeout: a Match exec
	// command outlives a killed ssh and holds its stderr; WaitDelay stops
	// waiting for that.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	stdout, stderr := &capWriter{max: sshGMaxOutput}, &capWriter{max: sshGMaxOutput}
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, nil
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("read ssh config with `ssh -G`: no answer within %s (a Match exec that hangs?)", sshGTimeout)
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return nil, nil, fmt.Errorf("read ssh config with `ssh -G`: %s", sshGError(stderr.String(), err))
	}
	s := sshSettings{}
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == "" {
			continue
		}
		k = strings.ToLower(k)
		s[k] = append(s[k], v)
	}
	return s, parseApplied(stderr.String()), nil
}

// sshGError keeps ssh's own complaint (the lines that are not debug output).
func sshGError(stderr string, err error) string {
	var msgs []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debug") || strings.HasPrefix(l, "OpenSSH_") || strings.HasPrefix(l, "Pseudo-terminal") {
			continue
		}
		msgs = append(msgs, l)
	}
	if len(msgs) == 0 {
		return err.Error()
	}
	return strings.Join(msgs, "; ")
}

// appliedBlock is a Host or Match block that ssh applied: file and line of
// its Host/Match line; Line 0 means the file's lines before its first block.
type appliedBlock struct {
	File string
	Line int
}

// parseApplied reads ssh -v's "Reading configuration data FILE",
// "FILE line N: Applying options for ..." and "FILE line N: matched ..."
// lines.
func parseApplied(stderr string) []appliedBlock {
	var out []appliedBlock
	seen := map[appliedBlock]bool{}
	add := func(b appliedBlock) {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	var pendingMatch *appliedBlock
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "debug1: Reading configuration data "):
			add(appliedBlock{File: strings.TrimPrefix(l, "debug1: Reading configuration data ")})
		case strings.Contains(l, ": Applying options for "):
			if b, ok := blockRef(l, ": Applying options for "); ok {
				add(b)
			}
		case strings.Contains(l, ": matched '"):
			if b, ok := blockRef(l, ": matched '"); ok {
				pendingMatch = &b
			}
		case strings.HasPrefix(l, "debug2: match found") && pendingMatch != nil:
			add(*pendingMatch)
			pendingMatch = nil
		case strings.HasPrefix(l, "debug2: match not found"):
			pendingMatch = nil
		}
	}
	return out
}

// blockRef parses "debugN: FILE line N<sep>...".
func blockRef(l, sep string) (appliedBlock, bool) {
	head, _, _ := strings.Cut(l, sep)
	if _, rest, ok := strings.Cut(head, ": "); ok {
		head = rest
	}
	i := strings.LastIndex(head, " line ")
	if i < 0 {
		return appliedBlock{}, false
	}
	n, err := strconv.Atoi(head[i+len(" line "):])
	if err != nil {
		return appliedBlock{}, false
	}
	return appliedBlock{File: head[:i], Line: n}, true
}

// sources finds, for the given keywords, the first file:line inside the
// applied blocks that sets each: where the value in effect came from (ssh
// keeps the first value it reads). Unreadable files are skipped: the result
// only adds detail.
func sources(blocks []appliedBlock, keys []string) map[string]string {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	out := map[string]string{}
	files := map[string][]string{}
	for _, b := range blocks {
		lines, ok := files[b.File]
		if !ok {
			data, err := os.ReadFile(b.File)
			if err == nil {
				lines = strings.Split(string(data), "\n")
			}
			files[b.File] = lines
		}
		for i := b.Line; i < len(lines); i++ { // b.Line is 1-based: lines[b.Line] is the next line
			f := strings.Fields(strings.ReplaceAll(lines[i], "=", " "))
			if len(f) == 0 || strings.HasPrefix(f[0], "#") {
				continue
			}
			k := strings.ToLower(f[0])
			if k == "host" || k == "match" {
				break
			}
			if want[k] && out[k] == "" {
				out[k] = fmt.Sprintf("%s:%d", b.File, i+1)
			}
		}
	}
	return out
}

// fallbackSettings reads the options xvmview uses from path with
// kevinburke/ssh_config, for machines without the OpenSSH client: Host
// patterns, negations and Include; Match only for Host and all.
func fallbackSettings(path, alias string) (sshSettings, error) {
	sc, err := loadSSHConfig(path)
	if err != nil {
		return nil, err
	}
	s := sshSettings{}
	if sc == nil {
		return s, nil
	}
	for _, key := range fallbackKeys {
		vs, err := sc.GetAll(alias, key)
		if err != nil {
			return nil, fmt.Errorf("read %s from %s for %s: %w", key, path, alias, err)
		}
		k := strings.ToLower(key)
		for _, v := range vs {
			if v == "" {
				continue
			}
			if k == "identityfile" || k == "certificatefile" {
				s[k] = append(s[k], v)
			} else if len(s[k]) == 0 {
				s[k] = []string{v}
			}
		}
	}
	// ssh uses whichever of ProxyJump and ProxyCommand comes first; without
	// positions, both set is ambiguous.
	if s.get("proxyjump") != "" && s.get("proxycommand") != "" && !strings.EqualFold(s.get("proxyjump"), "none") && !strings.EqualFold(s.get("proxycommand"), "none") {
		return nil, fmt.Errorf("both ProxyJump and ProxyCommand apply to %s in %s: keep one (or install the OpenSSH client, whose `ssh -G` xvmview then uses)", alias, path)
	}
	return s, nil
}

var fallbackKeys = []string{"HostName", "User", "Port", "IdentityFile", "UserKnownHostsFile", "GlobalKnownHostsFile",
	"ProxyJump", "ProxyCommand", "IdentitiesOnly", "CertificateFile", "ConnectTimeout", "ServerAliveInterval",
	"ServerAliveCountMax", "StrictHostKeyChecking", "BatchMode", "HashKnownHosts", "IdentityAgent", "AddressFamily",
	"HostKeyAlias", "BindAddress", "BindInterface", "CanonicalizeHostname", "ProxyUseFdpass", "PKCS11Provider",
	"RevokedHostKeys", "KnownHostsCommand"}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// findSSH returns the OpenSSH client to ask, or "" for none.
func findSSH(cfg Config) string {
	switch cfg.SSH {
	case "none":
		return ""
	case "":
		p, err := exec.LookPath("ssh")
		if err != nil {
			return ""
		}
		return p
	default:
		return cfg.SSH
	}
}

// userConfigPath is the user's ssh_config path: cfg.SSHConfigFile, else
// HOME/.ssh/config.
func userConfigPath(cfg Config, home string) string {
	if cfg.SSHConfigFile != "" {
		return cfg.SSHConfigFile
	}
	return filepath.Join(home, ".ssh", "config")
}
