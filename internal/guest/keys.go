package guest

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"slices"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// KeyState says how Dial can use an identity file.
type KeyState int

// The states of an identity file.
const (
	KeyMissing    KeyState = iota // no such file (skipped, as ssh does)
	KeyPlain                      // not encrypted: used as it is
	KeyInAgent                    // encrypted, but the agent holds it
	KeyPassphrase                 // encrypted: needs its passphrase at login
	KeyUnreadable                 // cannot be read or parsed
)

func (s KeyState) String() string {
	switch s {
	case KeyMissing:
		return "missing"
	case KeyPlain:
		return "no passphrase"
	case KeyInAgent:
		return "passphrase-protected, in the agent"
	case KeyPassphrase:
		return "passphrase-protected: asked at login"
	default:
		return "unreadable"
	}
}

// KeyInfo is one identity file of a target.
type KeyInfo struct {
	File        string
	State       KeyState
	Type        string // e.g. "ssh-ed25519"; "" when unknown
	Fingerprint string // "SHA256:..."; "" when unknown
	Err         error  // KeyUnreadable: why
}

// Keys describes t's identity files as Dial would use them with o: whether
// each needs a passphrase and whether the agent (o.AgentSocket, t's
// IdentityAgent or $SSH_AUTH_SOCK) holds it. It asks for nothing.
func Keys(ctx context.Context, t Target, o DialOptions) []KeyInfo {
	var inAgent [][]byte
	if sock := agentSocket(t, o); sock != "" {
		var d net.Dialer
		if conn, err := d.DialContext(ctx, "unix", sock); err == nil {
			if ks, err := agent.NewClient(conn).List(); err == nil {
				for _, k := range ks {
					inAgent = append(inAgent, k.Marshal())
				}
			}
			conn.Close()
		}
	}
	var out []KeyInfo
	for _, f := range t.IdentityFiles {
		k := KeyInfo{File: f}
		pem, err := os.ReadFile(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			k.State = KeyMissing
			out = append(out, k)
			continue
		case err != nil:
			k.State, k.Err = KeyUnreadable, err
			out = append(out, k)
			continue
		}
		var pub ssh.PublicKey
		s, err := ssh.ParsePrivateKey(pem)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			pub = pm.PublicKey
			if pub == nil {
				pub = readPublicKey(f + ".pub")
			}
			k.State = KeyPassphrase
			if pub != nil && slices.ContainsFunc(inAgent, func(b []byte) bool { return bytes.Equal(b, pub.Marshal()) }) {
				k.State = KeyInAgent
			}
		case err != nil:
			k.State, k.Err = KeyUnreadable, err
		default:
			k.State, pub = KeyPlain, s.PublicKey()
		}
		if pub != nil {
			k.Type, k.Fingerprint = pub.Type(), ssh.FingerprintSHA256(pub)
		}
		out = append(out, k)
	}
	return out
}
