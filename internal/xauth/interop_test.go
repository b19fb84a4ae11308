package xauth

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// TestWriteListedByXauth: every file we write is listed by `xauth nlist`
// exactly as Numeric prints its entries, all families included.
func TestWriteListedByXauth(t *testing.T) {
	requireXauth(t)
	hostname, _ := os.Hostname()
	sets := map[string][]Entry{
		"golden":  goldenEntries(),
		"mixed":   mixedEntries(hostname),
		"one":     {WildEntry(0, cookieN(0))},
		"maximal": {{Family: FamilyWild, Address: bytes.Repeat([]byte{0xff}, maxField), Number: "1", Name: CookieName, Data: make([]byte, maxField)}},
	}
	for name, entries := range sets {
		t.Run(name, func(t *testing.T) {
			path := tempAuth(t)
			mustWriteFile(t, path, entries)
			var want bytes.Buffer
			if err := WriteNumeric(&want, entries); err != nil {
				t.Fatal(err)
			}
			if got := nlist(t, path); got != want.String() {
				t.Errorf("xauth nlist:\n%.2000s\nwant:\n%.2000s", got, want.String())
			}
		})
	}
}

// TestNmergeReadByUs: numeric lines we print, merged by `xauth nmerge -`
// (the only way to make Wild and the other families with xauth), give a
// file we read back as the same entries in xauth's order.
func TestNmergeReadByUs(t *testing.T) {
	requireXauth(t)
	hostname, _ := os.Hostname()
	// No two with one key: xauth keeps such duplicates when merging into an
	// empty file, Merge keeps the last.
	entries := goldenEntries()
	for _, e := range mixedEntries(hostname) {
		if !slices.ContainsFunc(entries, e.sameKey) {
			entries = append(entries, e)
		}
	}
	var lines bytes.Buffer
	if err := WriteNumeric(&lines, entries); err != nil {
		t.Fatal(err)
	}
	path := tempAuth(t)
	runXauth(t, lines.String(), "-q", "-f", path, "nmerge", "-")
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := xauthOrder(mergeEntries(nil, entries)); !entriesEqual(got, want) {
		var g, w bytes.Buffer
		_, _ = WriteNumeric(&g, got), WriteNumeric(&w, want)
		t.Errorf("read back:\n%s\nwant:\n%s", g.String(), w.String())
	}
}

// TestConcurrentWriters: 16 goroutines using Merge and 16 xauth processes,
// each adding its own display on one file at once. Every entry survives and
// the file stays valid.
func TestConcurrentWriters(t *testing.T) {
	requireXauth(t)
	const n = 16
	path := tempAuth(t)
	ctx := t.Context()
	want := make(map[string]Cookie) // address/number -> cookie
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		ours := LocalEntry("ours", 100+i, cookieN(byte(i)))
		want["ours/"+ours.Number] = cookieN(byte(i))
		theirsNum := strconv.Itoa(200 + i)
		theirs := cookieN(byte(100 + i))
		want["theirs/"+theirsNum] = theirs
		// The cookie goes on stdin, never in argv.
		cmd := xauthCmd(ctx, t, "add theirs/unix:"+theirsNum+" . "+theirs.Hex()+"\n", "-q", "-f", path)
		wg.Go(func() {
			if err := Merge(ctx, path, ours); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if err := cmd.Run(); err != nil {
				errs <- fmt.Errorf("xauth add theirs/unix:%s: %w", theirsNum, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*n {
		t.Errorf("file holds %d entries, want %d", len(got), 2*n)
	}
	for _, e := range got {
		key := string(e.Address) + "/" + e.Number
		c, ok := want[key]
		if !ok || string(e.Data) != string(c[:]) || e.Family != FamilyLocal || e.Name != CookieName {
			t.Errorf("unexpected or wrong entry %v", e)
		}
		delete(want, key)
	}
	for key := range want {
		t.Errorf("entry %s lost", key)
	}
	var lines bytes.Buffer
	_ = WriteNumeric(&lines, got)
	if out := nlist(t, path); out != lines.String() {
		t.Errorf("xauth nlist disagrees with our reading:\n%s", out)
	}
	assertNoLockFiles(t, path)
}
