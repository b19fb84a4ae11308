package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPruneLogs(t *testing.T) {
	dir := t.TempDir()
	for i := range keepLogs + 5 {
		for _, p := range []string{"web", "web-2"} {
			name := fmt.Sprintf("%s-202601%02d-120000-1.log", p, i+1)
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	pruneLogs(dir, "web")
	ents, _ := os.ReadDir(dir)
	var web, web2 int
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), "web-2-"):
			web2++
		case strings.HasPrefix(e.Name(), "web-"):
			web++
			if e.Name() < "web-20260106" {
				t.Errorf("an old log survived: %s", e.Name())
			}
		}
	}
	if web != keepLogs || web2 != keepLogs+5 {
		t.Errorf("kept %d of web (want %d) and %d of web-2 (want all %d)", web, keepLogs, web2, keepLogs+5)
	}
}

func TestSessionLogCap(t *testing.T) {
	l, err := openSessionLog(filepath.Join(t.TempDir(), "logs"), "p")
	if err != nil {
		t.Fatal(err)
	}
	chunk := strings.Repeat("x", 64<<10)
	for range 40 {
		if _, err := l.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, l.Close())
	fi, err := os.Stat(l.path)
	must(t, err)
	if fi.Size() > maxLogSize+100 {
		t.Errorf("log grew to %d bytes, cap %d", fi.Size(), maxLogSize)
	}
	b, _ := os.ReadFile(l.path)
	if !strings.Contains(string(b), "[log truncated at") {
		t.Error("a capped log does not say so")
	}
}
