package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
)

// TrustTimeout bounds fetching a guest's host key.
const TrustTimeout = 15 * time.Second

// KeyState is what known_hosts says about a guest's host key.
type KeyState int

// The states of a host key.
const (
	KeyUnknown KeyState = iota // no line for the guest: AddGuestKey adds it
	KeyKnown                   // known_hosts vouches for it: nothing to do
	KeyChanged                 // known_hosts holds another key: never added
)

// GuestKey is the host key a profile's guest presents and what known_hosts
// says about it.
type GuestKey struct {
	Guest       guest.Target
	Type        string // e.g. "ssh-ed25519"
	Fingerprint string // "SHA256:..."
	State       KeyState
	Err         error  // for KeyUnknown and KeyChanged: the *HostKeyError
	File        string // the known_hosts file AddGuestKey writes to
	Hashed      bool   // AddGuestKey hashes the guest's name (HashKnownHosts yes)
	key         ssh.PublicKey
}

// KnownHostsName is the name the guest's key is recorded under: its
// HostName, as "[HostName]:port" when the port is not 22.
func (k GuestKey) KnownHostsName() string { return guest.KnownHostsName(k.Guest) }

// NoGuestError means a local profile was given where a guest is needed.
type NoGuestError struct{ Profile string }

func (e *NoGuestError) Error() string {
	return fmt.Sprintf("profile %s runs on this machine: it has no guest and no host key", e.Profile)
}

// KeyChangedError is AddGuestKey's refusal of a key that differs from the
// one on record: the guest may be an impostor.
type KeyChangedError struct{ Err *HostKeyError }

func (e *KeyChangedError) Error() string { return e.Err.Error() + "; not adding the new one" }
func (e *KeyChangedError) Unwrap() error { return e.Err }

// FetchGuestKey connects to the guest of profile p without logging in,
// takes the host key it presents (guest.FetchHostKey) and checks it against
// known_hosts as a login would (guest.CheckHostKey). cfg (zero = the usual
// places) says where the SSH files are; the guest's HashKnownHosts there
// says whether AddGuestKey hashes its name, as Dial's prompt does.
//
// It returns *NoGuestError for a local profile, *GuestConfigError,
// *NoKnownHostsError when the guest has no known_hosts file, the errors of
// FetchHostKey, and an error when known_hosts cannot be read.
func FetchGuestKey(ctx context.Context, p profile.Profile, cfg SSHConfig) (GuestKey, error) {
	if p.Local() {
		return GuestKey{}, &NoGuestError{Profile: p.Name}
	}
	t, err := ResolveGuest(p, cfg)
	if err != nil {
		return GuestKey{}, err
	}
	file, err := guest.KnownHostsFile(t)
	if err != nil {
		return GuestKey{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, TrustTimeout)
	defer cancel()
	key, err := guest.FetchHostKey(ctx, t)
	if err != nil {
		return GuestKey{}, err
	}
	k := GuestKey{Guest: t, Type: key.Type(), Fingerprint: ssh.FingerprintSHA256(key), File: file, Hashed: t.HashKnownHosts, key: key}
	err = guest.CheckHostKey(t, key)
	var hk *HostKeyError
	switch {
	case err == nil:
		k.State = KeyKnown
	case errors.As(err, &hk) && hk.Changed:
		k.State, k.Err = KeyChanged, hk
	case errors.As(err, &hk):
		k.State, k.Err = KeyUnknown, hk
	default:
		return GuestKey{}, err
	}
	return k, nil
}

// AddGuestKey records k, which the user has confirmed, in k.File
// (guest.AddKnownHost), in the form ssh(1) writes. A known key is left as
// it is; a changed one is refused with *KeyChangedError.
func AddGuestKey(k GuestKey) error {
	switch k.State {
	case KeyKnown:
		return nil
	case KeyChanged:
		var hk *HostKeyError
		errors.As(k.Err, &hk)
		return &KeyChangedError{Err: hk}
	}
	if k.key == nil {
		return errors.New("no host key to add: use FetchGuestKey")
	}
	return guest.AddKnownHost(k.Guest, k.key, k.Hashed)
}
