// Package xauth reads and writes Xauthority files byte-compatibly with libXau
// and xauth(1): entries, the numeric nlist/nmerge line format, display names,
// the client lookup rule, locked file edits and MIT-MAGIC-COOKIE-1 cookies.
// It uses only the standard library: no exec, no network.
package xauth
