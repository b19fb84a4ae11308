package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/xvmview/xvmview/internal/testguest"
)

// hostileSSHD is a guest's sshd that lies: an in-process
// golang.org/x/crypto/ssh server on the host's loopback that lets in the
// test guest's key, runs each command with /bin/sh as the guest user inside
// the guest's network namespace (testguest.Guest.Command), serves remote
// forwards by listening inside that namespace, and reports for each
// command's exit status what lie says. A real OpenSSH sshd cannot send an
// exit status above 255; this one can.
type hostileSSHD struct {
	g    *testguest.Guest
	ln   net.Listener
	cfg  *ssh.ServerConfig
	lie  func(status int) uint32
	host ssh.PublicKey
	wg   sync.WaitGroup
}

// startHostileSSHD starts a hostileSSHD for g, stopped when the test ends.
func startHostileSSHD(t *testing.T, g *testguest.Guest, lie func(int) uint32) *hostileSSHD {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	must(t, err)
	pubText, err := os.ReadFile(g.IdentityFile + ".pub")
	must(t, err)
	client, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	must(t, err)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if c.User() == g.User && string(k.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("not the test guest's key")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := &hostileSSHD{g: g, ln: ln, cfg: cfg, lie: lie, host: signer.PublicKey()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("the hostile sshd's connections did not end 10 s after the test")
		}
	})
	return s
}

// stanza is the ~/.ssh/config Host block for alias, with its known_hosts
// written to knownHosts.
func (s *hostileSSHD) stanza(t *testing.T, alias, knownHosts string) string {
	t.Helper()
	port := s.ln.Addr().(*net.TCPAddr).Port
	line := fmt.Sprintf("[127.0.0.1]:%d %s", port, ssh.MarshalAuthorizedKey(s.host))
	must(t, os.WriteFile(knownHosts, []byte(line), 0o600))
	return testguest.HostStanza(alias, "127.0.0.1", port, s.g.User, s.g.IdentityFile, knownHosts)
}

func (s *hostileSSHD) serve(c net.Conn) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	fw := &forwards{ns: s.g.Namespace, conn: sc, lns: map[string]net.Listener{}}
	defer fw.closeAll()
	go fw.global(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go s.session(ch, creqs)
	}
}

// session runs one "exec" as sshd does without a pty: stdin from the
// channel (closed at its EOF; the program outlives a closed channel),
// output to it, then the (lied) exit status or the signal.
func (s *hostileSSHD) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var cmd *exec.Cmd
	exited := make(chan struct{})
	for req := range reqs {
		switch {
		case req.Type == "exec" && cmd == nil:
			var p struct{ Command string }
			if ssh.Unmarshal(req.Payload, &p) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			cmd = s.g.Command(context.Background(), "/bin/sh", "-c", p.Command)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as sshd does
			cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
			cmd.WaitDelay = time.Second
			stdin, err := cmd.StdinPipe()
			if err == nil {
				err = cmd.Start()
			}
			if err != nil {
				_ = req.Reply(false, nil)
				return
			}
			_ = req.Reply(true, nil)
			go func() { _, _ = io.Copy(stdin, ch); stdin.Close() }()
			go func() {
				defer close(exited)
				_ = cmd.Wait()
				st := cmd.ProcessState.Sys().(syscall.WaitStatus)
				if st.Signaled() {
					_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
						Name       string
						CoreDumped bool
						Msg, Lang  string
					}{Name: signalName(st.Signal())}))
				} else {
					_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, s.lie(st.ExitStatus())))
				}
				ch.Close()
			}()
		case req.Type == "signal" && cmd != nil:
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				if sig, ok := sshSignals[p.Name]; ok {
					_ = cmd.Process.Signal(sig)
				}
			}
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	if cmd != nil {
		<-exited
	}
}

var sshSignals = map[string]syscall.Signal{"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "QUIT": syscall.SIGQUIT}

func signalName(sig syscall.Signal) string {
	for name, s := range sshSignals {
		if s == sig {
			return name
		}
	}
	return strconv.Itoa(int(sig))
}

// forwards serves one connection's remote forwards, listening inside the
// guest's network namespace as the guest's sshd would.
type forwards struct {
	ns   string
	conn *ssh.ServerConn
	mu   sync.Mutex
	lns  map[string]net.Listener
}

type forwardReq struct {
	Addr string
	Port uint32
}

func (f *forwards) global(reqs <-chan *ssh.Request) {
	for req := range reqs {
		var p forwardReq
		switch req.Type {
		case "tcpip-forward":
			if ssh.Unmarshal(req.Payload, &p) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			ln, err := listenInNetns(f.ns, net.JoinHostPort(p.Addr, strconv.Itoa(int(p.Port))))
			if err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			port := uint32(ln.Addr().(*net.TCPAddr).Port)
			f.mu.Lock()
			f.lns[net.JoinHostPort(p.Addr, strconv.Itoa(int(port)))] = ln
			f.mu.Unlock()
			var resp []byte
			if p.Port == 0 {
				resp = ssh.Marshal(struct{ Port uint32 }{port})
			}
			_ = req.Reply(true, resp)
			go f.accept(ln, p.Addr, port)
		case "cancel-tcpip-forward":
			if ssh.Unmarshal(req.Payload, &p) == nil {
				key := net.JoinHostPort(p.Addr, strconv.Itoa(int(p.Port)))
				f.mu.Lock()
				if ln := f.lns[key]; ln != nil {
					ln.Close()
					delete(f.lns, key)
				}
				f.mu.Unlock()
			}
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

func (f *forwards) accept(ln net.Listener, addr string, port uint32) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			ra := c.RemoteAddr().(*net.TCPAddr)
			ch, reqs, err := f.conn.OpenChannel("forwarded-tcpip", ssh.Marshal(struct {
				Addr       string
				Port       uint32
				OriginAddr string
				OriginPort uint32
			}{addr, port, ra.IP.String(), uint32(ra.Port)}))
			if err != nil {
				return
			}
			go ssh.DiscardRequests(reqs)
			defer ch.Close()
			done := make(chan struct{})
			go func() { _, _ = io.Copy(ch, c); _ = ch.CloseWrite(); close(done) }()
			_, _ = io.Copy(c, ch)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

func (f *forwards) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, ln := range f.lns {
		ln.Close()
		delete(f.lns, k)
	}
}

// listenInNetns listens on addr inside the network namespace ns (pinned
// in /run/netns), from a thread that enters it and comes back.
func listenInNetns(ns, addr string) (net.Listener, error) {
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread stays in the guest's namespace: keep it locked, so
		// that it ends with this goroutine instead of serving others.
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("back from namespace %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return ln, lerr
}
