// Package xauth reads and writes Xauthority files byte-compatibly with libXau
// and xauth(1).
//
// The layers, from pure to effectful:
//
//   - Cookie: a 16-byte MIT-MAGIC-COOKIE-1 secret whose String and fmt verbs
//     redact it.
//   - Entry, Read, Write: the binary file format (libXau AuRead.c/AuWrite.c).
//     Entry's String and fmt verbs redact Data, which holds the cookie.
//   - Entry.Numeric, ParseNumeric, ReadNumeric, WriteNumeric: the line format of
//     `xauth nlist` and `xauth nmerge`.
//   - ParseDisplay and Lookup: display names to keys as xauth and libxcb make
//     them, and the client's choice of entry (XauGetBestAuthByAddr).
//   - ReadFile, WriteFile, and Locker's Lock, Merge and Remove: file edits under
//     libXau's lock protocol (FILE-c, FILE-l), so xvmview and xauth(1) can
//     edit one file at the same time.
//
// It uses only the standard library: no exec, no network.
package xauth
