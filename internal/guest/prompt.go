package guest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Prompter asks the user what only the user can answer during a login. Dial
// calls it from the handshake; its answers are never written anywhere.
type Prompter interface {
	// Passphrase returns the passphrase of the private key file; attempt
	// counts from 1 and is above 1 after a wrong one. The caller zeroes the
	// returned bytes. An error means the user declined or could not be
	// asked (ErrNoPrompt).
	Passphrase(ctx context.Context, file string, attempt int) ([]byte, error)
	// ConfirmHostKey asks whether the unknown host key q is the host's. It
	// returns true only for the user's explicit yes; ErrNoPrompt when the
	// user cannot be asked this way (Dial then refuses the key as without
	// a Prompter).
	ConfirmHostKey(ctx context.Context, q HostKeyQuestion) (bool, error)
}

// ErrNoPrompt means a Prompter has no way to ask the user.
var ErrNoPrompt = errors.New("no way to ask the user")

// HostKeyQuestion is what the user is asked about an unknown host key.
type HostKeyQuestion struct {
	Alias       string // the name the user gave for the host
	Addr        string // host:port connected to
	KeyType     string // e.g. "ssh-ed25519"
	Fingerprint string // "SHA256:..."
	Jump        bool   // the host is a jump host on the way to the guest
}

// Text is the question as OpenSSH words it, with the key type and SHA256
// fingerprint, ending in a yes/no question.
func (q HostKeyQuestion) Text() string {
	what := "guest"
	if q.Jump {
		what = "jump host"
	}
	return fmt.Sprintf("The authenticity of %s %s (%s) can't be established.\n%s key fingerprint is %s.\n"+
		"Compare it with the host's own (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on its console).\n"+
		"Are you sure you want to continue connecting (yes/no)?",
		what, q.Alias, q.Addr, keyName(q.KeyType), q.Fingerprint)
}

func keyName(t string) string {
	switch t {
	case ssh.KeyAlgoED25519:
		return "ED25519"
	case ssh.KeyAlgoRSA:
		return "RSA"
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return "ECDSA"
	}
	return t
}

// MaxPassphraseTries is how often a wrong passphrase is asked again.
const MaxPassphraseTries = 3

// PassphraseError means an encrypted private key could not be unlocked: the
// passphrase was wrong MaxPassphraseTries times, or the user declined.
type PassphraseError struct {
	File     string
	Tries    int  // wrong passphrases given
	Declined bool // the user gave none (cancelled, or could not be asked)
	Err      error
}

func (e *PassphraseError) Error() string {
	if e.Declined {
		return fmt.Sprintf("no passphrase for %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("wrong passphrase for %s, %d times", e.File, e.Tries)
}

func (e *PassphraseError) Unwrap() error { return e.Err }

// keyCache unlocks encrypted keys through the prompt, once per Dial for
// every hop that accepts them.
type keyCache struct {
	prompt Prompter
	ctx    context.Context
	mu     sync.Mutex
	keys   map[string]ssh.Signer
}

func newKeyCache(ctx context.Context, p Prompter) *keyCache {
	return &keyCache{prompt: p, ctx: ctx, keys: map[string]ssh.Signer{}}
}

// unlock asks for file's passphrase until it decrypts pem, at most
// MaxPassphraseTries times.
func (k *keyCache) unlock(file string, pem []byte) (ssh.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s, ok := k.keys[file]; ok {
		return s, nil
	}
	for attempt := 1; attempt <= MaxPassphraseTries; attempt++ {
		pass, err := k.prompt.Passphrase(k.ctx, file, attempt)
		if err != nil {
			return nil, &PassphraseError{File: file, Tries: attempt - 1, Declined: true, Err: err}
		}
		s, err := ssh.ParsePrivateKeyWithPassphrase(pem, pass)
		clear(pass)
		if err == nil {
			k.keys[file] = s
			return s, nil
		}
		if !errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("unlock %s: %w", file, err)
		}
	}
	return nil, &PassphraseError{File: file, Tries: MaxPassphraseTries}
}

// lazy returns a signer for the encrypted key file whose public key is pub:
// the passphrase is asked only when the host accepts the key and a
// signature is needed, as ssh(1) does. A failure to unlock ends the login
// with that error (recorded in a).
func (k *keyCache) lazy(file string, pem []byte, pub ssh.PublicKey, a *auth) ssh.Signer {
	return &lazySigner{k: k, file: file, pem: pem, pub: pub, a: a}
}

type lazySigner struct {
	k    *keyCache
	file string
	pem  []byte
	pub  ssh.PublicKey
	a    *auth
}

func (l *lazySigner) PublicKey() ssh.PublicKey { return l.pub }

func (l *lazySigner) signer() (ssh.Signer, error) {
	s, err := l.k.unlock(l.file, l.pem)
	if err != nil {
		l.a.err = err
	}
	return s, err
}

func (l *lazySigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s, err := l.signer()
	if err != nil {
		return nil, err
	}
	return s.Sign(rand, data)
}

func (l *lazySigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	s, err := l.signer()
	if err != nil {
		return nil, err
	}
	if as, ok := s.(ssh.AlgorithmSigner); ok {
		return as.SignWithAlgorithm(rand, data, algorithm)
	}
	return s.Sign(rand, data)
}

// Algorithms are those x/crypto/ssh's own signer for the key type offers.
func (l *lazySigner) Algorithms() []string {
	if l.pub.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{l.pub.Type()}
}
