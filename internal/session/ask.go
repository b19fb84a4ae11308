package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/xvmview/xvmview/internal/guest"
)

// Asker asks the user during a login: for a key's passphrase, and whether
// to trust an unknown host key (the question shows its type and SHA256
// fingerprint). desktop.Asker is the real one (terminal or askpass).
type Asker interface {
	// Passphrase returns the answer to prompt; the caller zeroes it.
	Passphrase(ctx context.Context, prompt string) ([]byte, error)
	// Confirm returns true only on the user's explicit yes; an error that
	// is ErrCannotAsk means the user cannot be asked this way.
	Confirm(ctx context.Context, prompt string) (bool, error)
}

// prompter adapts an Asker to guest.Prompter with OpenSSH's wording.
type prompter struct {
	a         Asker
	cannotAsk error // the Asker's "cannot ask" error, mapped to guest.ErrNoPrompt
}

// newPrompter returns nil for a nil Asker: Dial then asks nothing.
func newPrompter(a Asker, cannotAsk error) guest.Prompter {
	if a == nil {
		return nil
	}
	return &prompter{a: a, cannotAsk: cannotAsk}
}

func (p *prompter) Passphrase(ctx context.Context, file string, attempt int) ([]byte, error) {
	prompt := fmt.Sprintf("Enter passphrase for key '%s': ", file)
	if attempt > 1 {
		prompt = fmt.Sprintf("Wrong passphrase (try %d of %d). Enter passphrase for key '%s': ", attempt, guest.MaxPassphraseTries, file)
	}
	b, err := p.a.Passphrase(ctx, prompt)
	if err != nil && p.cannotAsk != nil && errors.Is(err, p.cannotAsk) {
		return nil, fmt.Errorf("%w: %v", guest.ErrNoPrompt, err)
	}
	return b, err
}

func (p *prompter) ConfirmHostKey(ctx context.Context, q guest.HostKeyQuestion) (bool, error) {
	ok, err := p.a.Confirm(ctx, q.Text())
	if err != nil && p.cannotAsk != nil && errors.Is(err, p.cannotAsk) {
		return false, guest.ErrNoPrompt
	}
	return ok, err
}
