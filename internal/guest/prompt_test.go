package guest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/xvmview/xvmview/internal/testguest"
)

// fakePrompt answers from lists and records the questions.
type fakePrompt struct {
	mu        sync.Mutex
	passes    []string // answers in order; "" declines
	hostKey   []bool
	asked     []string
	questions []HostKeyQuestion
}

func (f *fakePrompt) Passphrase(_ context.Context, file string, attempt int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, file)
	if len(f.passes) == 0 || f.passes[0] == "" {
		return nil, errors.New("declined")
	}
	p := f.passes[0]
	f.passes = f.passes[1:]
	return []byte(p), nil
}

func (f *fakePrompt) ConfirmHostKey(_ context.Context, q HostKeyQuestion) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.questions = append(f.questions, q)
	if len(f.hostKey) == 0 {
		return false, ErrNoPrompt
	}
	a := f.hostKey[0]
	f.hostKey = f.hostKey[1:]
	return a, nil
}

// encryptedKeyFor makes an ed25519 key with passphrase pass (ssh-keygen -N)
// and authorizes it for the guest user. Two KDF rounds (-a 2, default 16)
// keep a wrong passphrase fast under the race detector.
func encryptedKeyFor(t *testing.T, g *testguest.Guest, pass string) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "id_enc")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-a", "2", "-N", pass, "-C", "enc", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	must(t, err)
	ak := filepath.Join(g.Home, ".ssh", "authorized_keys")
	f, err := os.OpenFile(ak, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.Write(pub)
	must(t, err)
	must(t, f.Close())
	return key
}

// TestRealPassphrase logs in with a real encrypted key: the passphrase is
// asked only when needed, a wrong one again, at most MaxPassphraseTries
// times, and a refusal ends the login with a clear error.
func TestRealPassphrase(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("no ssh-keygen")
	}
	g, tg, c := realGuest(t)
	c.Close()
	key := encryptedKeyFor(t, g, "right horse")
	tg.IdentityFiles = []string{key}
	tg.BatchMode = false // the test guest's ssh_config says yes
	for _, tt := range []struct {
		name    string
		passes  []string
		asked   int
		wantErr string
	}{
		{"right", []string{"right horse"}, 1, ""},
		{"wrong then right", []string{"wrong", "right horse"}, 2, ""},
		{"always wrong", []string{"a", "b", "c", "d"}, MaxPassphraseTries, "wrong passphrase for " + key + ", 3 times"},
		{"declined", []string{""}, 1, "no passphrase for " + key},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakePrompt{passes: tt.passes}
			c, err := dial(t, tg, DialOptions{NoAgent: true, Prompt: p})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				must(t, c.Run(context.Background(), "true", nil, nil, nil))
				c.Close()
			} else {
				var pe *PassphraseError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Dial = %v, want *PassphraseError %q", err, tt.wantErr)
				}
			}
			if len(p.asked) != tt.asked {
				t.Errorf("asked %d times, want %d", len(p.asked), tt.asked)
			}
		})
	}
	t.Run("no prompt", func(t *testing.T) {
		_, err := dial(t, tg, noAgent)
		var ae *AuthError
		if !errors.As(err, &ae) || len(ae.Encrypted) != 1 || !strings.Contains(err.Error(), key+" is passphrase-protected") {
			// (The ssh-add advice is the CLI's hint: cmd/xvmview TestHintFor.)
			t.Fatalf("Dial without a prompt = %v, want *AuthError naming the encrypted key", err)
		}
	})
	t.Run("batch mode", func(t *testing.T) {
		p := &fakePrompt{passes: []string{"right horse"}}
		bt := tg
		bt.BatchMode = true
		if _, err := dial(t, bt, DialOptions{NoAgent: true, Prompt: p}); err == nil || len(p.asked) != 0 {
			t.Fatalf("Dial in BatchMode = %v after %d questions, want a refusal without any", err, len(p.asked))
		}
	})
}

// TestRealHostKeyQuestion: an unknown host key is accepted only on the
// user's yes, and then recorded; a declined key or StrictHostKeyChecking
// yes refuses it and records nothing.
func TestRealHostKeyQuestion(t *testing.T) {
	g, tg, c := realGuest(t)
	c.Close()
	tg.BatchMode = false // the test guest's ssh_config says yes
	for _, tt := range []struct {
		name    string
		answers []bool
		strict  string
		ok      bool
		asked   int
	}{
		{"yes", []bool{true}, "ask", true, 1},
		{"no", []bool{false}, "ask", false, 1},
		{"cannot ask", nil, "", false, 1},
		{"strict", []bool{true}, "yes", false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			ut := tg
			ut.KnownHostsFiles = []string{kh}
			ut.StrictHostKeyChecking = tt.strict
			p := &fakePrompt{hostKey: tt.answers}
			c, err := dial(t, ut, DialOptions{NoAgent: true, Prompt: p})
			if len(p.questions) != tt.asked {
				t.Fatalf("asked %d times, want %d", len(p.questions), tt.asked)
			}
			if tt.asked > 0 {
				q := p.questions[0]
				if q.Fingerprint != g.HostKeyFingerprint || q.KeyType != "ssh-ed25519" || !strings.Contains(q.Text(), g.HostKeyFingerprint) {
					t.Errorf("question %+v lacks the key type or fingerprint %s", q, g.HostKeyFingerprint)
				}
			}
			data, _ := os.ReadFile(kh)
			if !tt.ok {
				var he *HostKeyError
				if !errors.As(err, &he) || len(data) != 0 {
					t.Fatalf("Dial = %v with known_hosts %q, want *HostKeyError and nothing recorded", err, data)
				}
				if tt.name == "no" && !he.Declined {
					t.Errorf("HostKeyError %+v not marked declined", he)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if !strings.Contains(string(data), "ssh-ed25519") {
				t.Errorf("known_hosts after yes = %q, want the key", data)
			}
			// Now known: no question the second time.
			p2 := &fakePrompt{}
			c2, err := dial(t, ut, DialOptions{NoAgent: true, Prompt: p2})
			if err != nil || len(p2.questions) != 0 {
				t.Fatalf("second Dial = %v after %d questions, want the recorded key accepted silently", err, len(p2.questions))
			}
			c2.Close()
		})
	}
}

// TestKeys: which identity files need a passphrase, without asking.
func TestKeys(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("no ssh-keygen")
	}
	dir := t.TempDir()
	mk := func(name, pass string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-a", "2", "-N", pass, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		return p
	}
	plain, enc := mk("plain", ""), mk("enc", "secret")
	junk := filepath.Join(dir, "junk")
	must(t, os.WriteFile(junk, []byte("not a key"), 0o600))
	ks := Keys(context.Background(), Target{IdentityFiles: []string{plain, enc, filepath.Join(dir, "missing"), junk}}, noAgent)
	want := []KeyState{KeyPlain, KeyPassphrase, KeyMissing, KeyUnreadable}
	if len(ks) != len(want) {
		t.Fatalf("Keys = %+v", ks)
	}
	for i, k := range ks {
		if k.State != want[i] {
			t.Errorf("%s: %v, want %v", k.File, k.State, want[i])
		}
	}
	if ks[1].Type != "ssh-ed25519" || !strings.HasPrefix(ks[1].Fingerprint, "SHA256:") {
		t.Errorf("the encrypted key's public half is unknown: %+v", ks[1])
	}
}
