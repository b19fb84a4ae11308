package session

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xvmview/xvmview/internal/testguest"
)

// TestTrustGuestKey: the trust decision against a real sshd. An unknown key
// is added on request and is known afterwards; a changed key is never
// added; a local profile has no key.
func TestTrustGuestKey(t *testing.T) {
	ctx := context.Background()
	if _, err := FetchGuestKey(ctx, testProfile(t, "loc", "host = \"local\"\ncommand = [\"x\"]\n"), SSHConfig{}); !errors.As(err, new(*NoGuestError)) {
		t.Errorf("local profile: %v, want *NoGuestError", err)
	}

	g := testguest.Start(t, testguest.Options{})
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config")
	cfg := SSHConfig{SSHConfigFile: cfgFile, Home: dir}
	p := testProfile(t, "g", "host = \""+g.Alias+"\"\ncommand = [\"xterm\"]\n")
	useKnownHosts := func(kh string) {
		must(t, os.WriteFile(cfgFile, []byte(g.HostStanza(g.Alias, kh)), 0o600))
	}

	kh := filepath.Join(dir, "new", "known_hosts") // in a directory that does not exist yet
	useKnownHosts(kh)
	k, err := FetchGuestKey(ctx, p, cfg)
	if err != nil || k.State != KeyUnknown || k.Fingerprint != g.HostKeyFingerprint || k.File != kh || k.Hashed {
		t.Fatalf("unknown key: %+v, %v; want KeyUnknown for %s in %s", k, err, g.HostKeyFingerprint, kh)
	}
	if _, err := os.Stat(filepath.Dir(kh)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fetching the key wrote to %s (err %v)", filepath.Dir(kh), err)
	}
	must(t, AddGuestKey(k))
	if k, err := FetchGuestKey(ctx, p, cfg); err != nil || k.State != KeyKnown {
		t.Errorf("after AddGuestKey: %+v, %v; want KeyKnown", k, err)
	}

	wrong := filepath.Join(dir, "wrong")
	must(t, g.WrongKnownHosts(wrong))
	before, _ := os.ReadFile(wrong)
	useKnownHosts(wrong)
	k, err = FetchGuestKey(ctx, p, cfg)
	var hk *HostKeyError
	if err != nil || k.State != KeyChanged || !errors.As(k.Err, &hk) || !hk.Changed {
		t.Fatalf("changed key: %+v, %v; want KeyChanged with a *HostKeyError", k, err)
	}
	var kc *KeyChangedError
	if err := AddGuestKey(k); !errors.As(err, &kc) || !errors.As(err, &hk) {
		t.Errorf("AddGuestKey of a changed key = %v, want *KeyChangedError wrapping the *HostKeyError", err)
	}
	if after, _ := os.ReadFile(wrong); !bytes.Equal(before, after) {
		t.Errorf("a changed key was written:\n%s", after)
	}
}
