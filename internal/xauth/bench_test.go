package xauth

import (
	"fmt"
	"testing"
)

// BenchmarkMerge merges one entry into a file of 1,000 entries: lock, read,
// merge, write FILE-n, fsync, rename, unlock.
func BenchmarkMerge(b *testing.B) {
	path := tempAuth(b)
	entries := make([]Entry, 1000)
	for i := range entries {
		entries[i] = LocalEntry(fmt.Sprintf("host%d", i), i, cookieN(byte(i)))
	}
	if err := WriteFile(path, entries); err != nil {
		b.Fatal(err)
	}
	e := WildEntry(5, cookieN(1))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := Merge(ctx, path, e); err != nil {
			b.Fatal(err)
		}
	}
}
