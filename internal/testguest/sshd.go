package testguest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// newKey makes an ed25519 key pair: the private key in OpenSSH PEM format
// and the public key.
func newKey(comment string) (priv []byte, pub ssh.PublicKey, err error) {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(sk, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("encode ed25519 key: %w", err)
	}
	pub, err = ssh.NewPublicKey(pk)
	if err != nil {
		return nil, nil, fmt.Errorf("encode ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(block), pub, nil
}

func authorizedLine(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// knownHostsLine names the guest by address (as "[addr]:port" too when the
// port is not 22) and by alias.
func (g *Guest) knownHostsLine(pub ssh.PublicKey) string {
	hosts := []string{g.Addr}
	if g.Port != 22 {
		hosts = append(hosts, fmt.Sprintf("[%s]:%d", g.Addr, g.Port))
	}
	hosts = append(hosts, g.Alias)
	return strings.Join(hosts, ",") + " " + authorizedLine(pub) + "\n"
}

// writePrivate writes data to path with mode 0600 via a temporary name and a
// rename, so no reader sees a partial file.
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o600)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// cfgValue quotes a path for sshd_config/ssh_config if it needs it.
func cfgValue(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return strconv.Quote(s)
	}
	return s
}

// sshdConfig builds sshd_config. sshd keeps the first value of a keyword, so
// the caller's lines come first; a caller's Match block goes last.
// MaxStartups is the exception (sshd keeps its last value): the default
// line is left out when the caller sets it.
func (g *Guest) sshdConfig(hostKey, authKeys, pidFile string, extra []string) string {
	var pre, match []string
	maxStartups := "MaxStartups 100\n"
	for i, l := range extra {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], "Match") {
			match = extra[i:]
			break
		}
		if len(f) > 0 && strings.EqualFold(f[0], "MaxStartups") {
			maxStartups = ""
		}
		pre = append(pre, l)
	}
	var b strings.Builder
	b.WriteString("# sshd_config of xvmview test guest " + g.Namespace + "\n")
	for _, l := range pre {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, `ListenAddress %s
Port %d
AddressFamily inet
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers %s
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
StrictModes yes
X11Forwarding yes
X11UseLocalhost yes
AllowTcpForwarding yes
AcceptEnv LANG LC_*
LogLevel VERBOSE
PrintMotd no
PrintLastLog no
UseDNS no
%sSubsystem sftp internal-sftp
`, g.Addr, g.Port, cfgValue(hostKey), cfgValue(pidFile), cfgValue(authKeys), g.User, maxStartups)
	for _, l := range match {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func (g *Guest) sshConfig() string {
	return "# ssh_config of xvmview test guest " + g.Namespace + "\n" + g.HostStanza(g.Alias, g.KnownHosts)
}

// HostStanza is an ssh_config Host block naming this guest alias, with
// knownHosts as its UserKnownHostsFile and strict host key checking: what
// a user of the guest writes in ~/.ssh/config.
func (g *Guest) HostStanza(alias, knownHosts string) string {
	return HostStanza(alias, g.Addr, g.Port, g.User, g.IdentityFile, knownHosts)
}

// HostStanza is the ssh_config stanza the tests use for any SSH peer (a
// test guest, a test VM, an in-process sshd): alias reaches user@host:port
// with identity only, host keys checked strictly against knownHosts alone.
func HostStanza(alias, host string, port int, user, identity, knownHosts string) string {
	return fmt.Sprintf(`Host %s
	HostName %s
	Port %d
	User %s
	IdentityFile %s
	IdentitiesOnly yes
	UserKnownHostsFile %s
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	UpdateHostKeys no
	BatchMode yes
`, alias, host, port, user, cfgValue(identity), cfgValue(knownHosts))
}

// writeKeysAndConfig makes the host and client keys, the authorized_keys
// file (root-owned, in a root-owned ~/.ssh, so the guest user cannot edit
// it), known_hosts, ssh_config and sshd_config.
func writeKeysAndConfig(g *Guest, opts Options) error {
	hostPriv, hostPub, err := newKey(g.Namespace + "-host")
	if err != nil {
		return err
	}
	clientPriv, clientPub, err := newKey(g.User + "-client")
	if err != nil {
		return err
	}
	g.HostKeyFingerprint = ssh.FingerprintSHA256(hostPub)
	g.s.hostKey = hostPub
	g.IdentityFile = filepath.Join(g.Dir, "id_ed25519")
	g.KnownHosts = filepath.Join(g.Dir, "known_hosts")
	g.SSHConfig = filepath.Join(g.Dir, "ssh_config")
	hostKey := filepath.Join(g.Dir, "ssh_host_ed25519_key")

	sshDir := filepath.Join(g.Home, ".ssh")
	authKeys := filepath.Join(sshDir, "authorized_keys")
	if err := os.Mkdir(sshDir, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", sshDir, err)
	}
	if err := os.WriteFile(authKeys, []byte(authorizedLine(clientPub)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", authKeys, err)
	}

	files := []struct {
		path string
		data string
	}{
		{hostKey, string(hostPriv)},
		{hostKey + ".pub", authorizedLine(hostPub) + "\n"},
		{g.IdentityFile, string(clientPriv)},
		{g.IdentityFile + ".pub", authorizedLine(clientPub) + "\n"},
		{g.KnownHosts, g.knownHostsLine(hostPub)},
		{g.SSHConfig, g.sshConfig()},
		{filepath.Join(g.Dir, "sshd_config"), g.sshdConfig(hostKey, authKeys, filepath.Join(g.Dir, "sshd.pid"), opts.SSHDConfig)},
	}
	for _, f := range files {
		if err := writePrivate(f.path, []byte(f.data)); err != nil {
			return err
		}
	}
	return nil
}

// SSHAddr returns "Addr:Port", the address to dial.
func (g *Guest) SSHAddr() string { return net.JoinHostPort(g.Addr, strconv.Itoa(g.Port)) }

// ClientConfig returns a golang.org/x/crypto/ssh client configuration for
// User with IdentityFile, accepting only the guest's host key, for tests that
// need a raw connection. It returns an error if IdentityFile cannot be read
// or parsed.
func (g *Guest) ClientConfig() (*ssh.ClientConfig, error) {
	b, err := os.ReadFile(g.IdentityFile)
	if err != nil {
		return nil, fmt.Errorf("read test guest identity: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse test guest identity %s: %w", g.IdentityFile, err)
	}
	return &ssh.ClientConfig{
		User:              g.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(g.s.hostKey),
		HostKeyAlgorithms: []string{g.s.hostKey.Type()},
		Timeout:           startTimeout,
	}, nil
}

// WrongKnownHosts writes to path (mode 0600) a known_hosts file that names
// this guest exactly as KnownHosts does but with a different, fresh host key,
// for "host key changed" tests. It returns an error if the file cannot be
// written.
func (g *Guest) WrongKnownHosts(path string) error {
	_, pub, err := newKey("wrong")
	if err != nil {
		return err
	}
	return writePrivate(path, []byte(g.knownHostsLine(pub)))
}

// startSSHD starts sshd in the namespace and waits until it listens: for its
// "Server listening on" line, then for a TCP connection from the host.
func startSSHD(ctx context.Context, g *Guest) error {
	s := g.s
	if err := os.MkdirAll(privsepDir, 0o755); err != nil {
		return fmt.Errorf("make sshd privilege separation dir: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	// `ip netns exec` execs sshd in place: the PID is sshd's.
	cmd := exec.Command(s.ip, "netns", "exec", g.Namespace, sshdPath, "-D", "-e", "-f", filepath.Join(g.Dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	// Take sshd along if the test binary dies before Close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.waitDone = make(chan struct{})
	if err := startHeld(cmd, s.waitDone); err != nil {
		_ = r.Close()
		_ = w.Close()
		return fmt.Errorf("start sshd: %w", err)
	}
	_ = w.Close()
	s.sshd = cmd
	g.SSHDPID = cmd.Process.Pid
	listening := make(chan struct{})
	go func() {
		defer func() { _ = r.Close() }()
		br := bufio.NewReader(r)
		seen := false
		for {
			line, err := br.ReadString('\n')
			_, _ = s.sshdLog.Write([]byte(line))
			if !seen && strings.Contains(line, "Server listening on") {
				seen = true
				close(listening)
			}
			if err != nil {
				_, _ = io.Copy(s.sshdLog, br)
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(s.waitDone)
	}()

	select {
	case <-listening:
	case <-s.waitDone:
		return fmt.Errorf("sshd of test guest %s exited during start-up: %s", g.Namespace, s.sshdLog.tail(2000))
	case <-ctx.Done():
		return fmt.Errorf("wait for sshd of test guest %s to listen: %w; sshd said: %s", g.Namespace, ctx.Err(), s.sshdLog.tail(2000))
	}
	var d net.Dialer
	addr := g.SSHAddr()
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if perr := pause(ctx, 10*time.Millisecond); perr != nil {
			return fmt.Errorf("connect to sshd of test guest at %s: %w", addr, err)
		}
	}
}
