package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// controlServer plays a session's control socket in dir: it answers pull
// with pullText and records what push sent.
func controlServer(t *testing.T, dir, pullText string) <-chan string {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, "control.sock"))
	must(t, err)
	t.Cleanup(func() { l.Close() })
	pushed := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			line, _ := br.ReadString('\n')
			switch {
			case line == "pull\n":
				io.WriteString(c, "ok "+strconv.Itoa(len(pullText))+"\n"+pullText)
			case strings.HasPrefix(line, "push "):
				n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "push ")))
				b := make([]byte, n)
				io.ReadFull(br, b)
				pushed <- string(b)
				io.WriteString(c, "ok 0\n")
			}
			c.Close()
		}
	}()
	return pushed
}

func TestClipCLI(t *testing.T) {
	_, root := everydayHome(t)
	tests := []cliCase{
		{name: "no argument", args: []string{"clip", "pull"}, wantCode: 2, wantErr: []string{"clip pull needs a profile name or a session ID"}},
		{name: "unknown", args: []string{"clip", "push", "nosuch"}, wantCode: 1, wantErr: []string{`no running session with ID or profile "nosuch"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}

	fakeLauncher(t, root, "cccc00000001", "web")
	t.Run("no socket", cliCase{args: []string{"clip", "pull", "web"}, wantCode: 1,
		wantErr: []string{"session cccc00000001 (profile web) has no clipboard"}}.run)

	// The guest's text reaches a pipe as the guest sent it (escape and all).
	pushed := controlServer(t, filepath.Join(root, "cccc00000001"), "url\x1b]2;x\x07")
	t.Run("pull", cliCase{args: []string{"clip", "pull", "web"}, wantOut: []string{"url\x1b]2;x\x07"}}.run)
	var o, e bytes.Buffer
	code := run(context.Background(), []string{"clip", "push", "cccc00000001"}, Env{Stdin: strings.NewReader("to the guest"), Stdout: &o, Stderr: &e, Getenv: os.Getenv, Environ: os.Environ})
	if code != 0 || !strings.Contains(e.String(), "12 bytes ready for one paste in session cccc00000001") {
		t.Errorf("clip push: exit %d, stderr %q", code, e.String())
	}
	if got := <-pushed; got != "to the guest" {
		t.Errorf("the session got %q", got)
	}

	fakeLauncher(t, root, "cccc00000002", "web")
	t.Run("two sessions", cliCase{args: []string{"clip", "pull", "web"}, wantCode: 2,
		wantErr: []string{"2 sessions of profile web are running: name one by its ID"}}.run)
}
