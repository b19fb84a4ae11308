// Package profiles holds the profiles shipped with xvmview, embedded in the
// binary. Each NAME.toml file is one profile; the format is described in
// README.md next to them and in firefox-domu.toml, which documents every key.
// Package internal/profile decodes and validates them; a user's own profile
// of the same name shadows a shipped one.
package profiles

import "embed"

// FS holds the shipped profiles, one NAME.toml file per profile, at its root.
//
//go:embed *.toml
var FS embed.FS
