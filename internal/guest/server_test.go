package guest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testServer is an in-process SSH server on loopback. It accepts the
// authorised public key and runs a tiny command language: "true",
// "exit N" (N any uint32), "cat" (stdin to stdout), "echo-stderr TEXT",
// "hang", and, as a hostile sshd would, "exit-signal HEXNAME" (any signal
// name) and for Start "exit-raw N" (any status).
type testServer struct {
	t       *testing.T
	ln      net.Listener
	hostKey ssh.Signer

	mu           sync.Mutex
	authAttempts int
	execs        []string
	conns        int // connections accepted
	drop         int // close this many more connections at once, as sshd's MaxStartups does
	dropReset    bool
	globalReqs   int // global requests received, e.g. keepalive@openssh.com
}

func newKey(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

// writeKey writes priv as an unencrypted OpenSSH private key file and
// returns its path.
func writeKey(t *testing.T, priv ed25519.PrivateKey) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// encryptedPEM is one passphrase-protected key, made once: the bcrypt KDF
// is slow.
var encryptedPEM = sync.OnceValues(func() (ed25519.PrivateKey, []byte) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte("secret"))
	if err != nil {
		panic(err)
	}
	return priv, pem.EncodeToMemory(block)
})

// encryptedKey writes the passphrase-protected test key and returns the
// private key and the file's path.
func encryptedKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	priv, data := encryptedPEM()
	path := filepath.Join(t.TempDir(), "id_encrypted")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, path
}

func newTestServer(t *testing.T, authorized ssh.PublicKey) *testServer {
	t.Helper()
	hostKey, _ := newKey(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, hostKey: hostKey}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			s.authAttempts++
			s.mu.Unlock()
			if authorized != nil && string(key.Marshal()) == string(authorized.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("key not authorised")
		},
	}
	cfg.AddHostKey(hostKey)
	serveConns(t, ln, func(c net.Conn) { s.serve(c, cfg) })
	return s
}

// serveConns accepts on ln and runs handle for each connection in its own
// goroutine until the test ends; cleanup closes ln and waits for them all.
func serveConns(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handle(c) })
		}
	})
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) port() int {
	return s.ln.Addr().(*net.TCPAddr).Port
}

func (s *testServer) executed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

func (s *testServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.globalReqs
}

func (s *testServer) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authAttempts
}

func (s *testServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	s.mu.Lock()
	s.conns++
	drop, reset := s.drop > 0, s.dropReset
	if drop {
		s.drop--
	}
	s.mu.Unlock()
	if drop {
		if reset {
			c.(*net.TCPConn).SetLinger(0) // close sends RST
		} else {
			io.WriteString(c, "Exceeded MaxStartups\r\n") // what OpenSSH 9 writes before it closes
		}
		return
	}
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go func() {
		for req := range reqs {
			s.mu.Lock()
			s.globalReqs++
			s.mu.Unlock()
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go s.session(ch, creqs)
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		cmd, err := unportable(string(req.Payload[4:]))
		if err != nil {
			req.Reply(false, nil)
			continue
		}
		s.mu.Lock()
		s.execs = append(s.execs, cmd)
		s.mu.Unlock()
		req.Reply(true, nil)
		status := 0
		switch f := strings.Fields(cmd); {
		case cmd == "true":
		case cmd == "hang": // until the client closes the channel
			for range reqs {
			}
			return
		case cmd == "cat":
			io.Copy(ch, ch)
		case len(f) == 2 && f[0] == "exit":
			status, _ = strconv.Atoi(f[1])
		case len(f) > 1 && f[0] == "echo-stderr":
			io.WriteString(ch.Stderr(), strings.Join(f[1:], " "))
		case len(f) == 2 && f[0] == "exit-signal": // a hostile sshd: any name, hex-encoded here
			name, _ := hex.DecodeString(f[1])
			ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Name       string
				CoreDumped bool
				Msg, Lang  string
			}{Name: string(name), Msg: "\033[31mmsg"}))
			return
		case strings.HasPrefix(cmd, "exec ") && strings.Contains(cmd, " exit-raw "):
			// Start of `exit-raw N`: a hostile sshd reports status N,
			// whatever it is, for a program it was asked to start.
			n, _ := strconv.ParseUint(strings.Trim(f[len(f)-1], "'"), 10, 32)
			status = int(n)
		default:
			status = 127
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
		return
	}
}

// knownHostsFile writes a known_hosts file vouching key for addr.
func knownHostsFile(t *testing.T, addr string, keys ...ssh.PublicKey) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n")
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// unportable undoes Portable as the guest's sh does; other commands (from
// ssh(1) in tests) stay as they are.
func unportable(cmd string) (string, error) {
	enc, ok := strings.CutPrefix(cmd, portableFirst)
	if !ok {
		return cmd, nil
	}
	if !strings.HasSuffix(enc, "'") {
		return "", fmt.Errorf("command %q lacks Portable's closing quote", cmd)
	}
	enc = strings.ReplaceAll(strings.TrimSuffix(enc, "'"), "' '", "")
	var b strings.Builder
	for i := 0; i < len(enc); i++ {
		if enc[i] != '\\' {
			b.WriteByte(enc[i])
			continue
		}
		n, err := strconv.ParseUint(enc[i+1:i+4], 8, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}
