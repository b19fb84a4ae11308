package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// runCLI runs xvmview in-process with a private home and config.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func cliHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	if err := os.MkdirAll(filepath.Join(home, ".config", "xvmview", "profiles"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

func writeProfile(t *testing.T, home, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, ".config", "xvmview", "profiles", name+".toml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCLI(t *testing.T) {
	home := cliHome(t)
	writeProfile(t, home, "mine", "description = \"my own\"\nhost = \"local\"\ncommand = [\"xclock\"]\n")
	writeProfile(t, home, "broken", "host = \"local\"\ncomand = [\"xclock\"]\n")
	writeProfile(t, home, "remote", "host = \"web\"\ncommand = [\"firefox\"]\nport = 2222\nuser = \"alice\"\n")

	noXephyr := t.TempDir() // a PATH without Xephyr
	tests := []cliCase{
		{name: "version", args: []string{"version"}, wantOut: []string{"xvmview "}},
		{name: "help", args: []string{"--help"}, wantOut: []string{"xvmview run demo", "Available Commands"}},
		{name: "run help", args: []string{"run", "--help"}, wantOut: []string{"--dry-run", "--verbose", "exit status is the app's"}},
		{name: "list", args: []string{"list"}, wantOut: []string{"demo", "mine", "my own", "broken", "BROKEN", "broken.toml:2"}},
		{name: "run without profile", args: []string{"run"}, wantCode: 2, wantErr: []string{"xvmview: error: run needs a profile", "xvmview: hint:"}},
		{name: "unknown flag", args: []string{"run", "demo", "--frobnicate"}, wantCode: 2, wantErr: []string{"unknown flag: --frobnicate"}},
		{name: "extra args without dashes", args: []string{"run", "demo", "x"}, wantCode: 2, wantErr: []string{`unexpected argument "x"`, "after --"}},
		{name: "bad profile name", args: []string{"run", "../etc/passwd"}, wantCode: 2, wantErr: []string{"../etc/passwd"}},
		{name: "unknown profile", args: []string{"run", "nosuch"}, wantCode: 1, wantErr: []string{"nosuch", "xvmview list"}},
		{name: "broken profile", args: []string{"run", "broken"}, wantCode: 1, wantErr: []string{"broken.toml:2", "comand"}},
		{name: "dry run local", args: []string{"run", "mine", "--dry-run", "--", "-update", "1"}, wantOut: []string{
			"-displayfd 3", "-auth ", "-reset -terminate", "-name xvmview-mine", "DISPLAY=:N", "xclock -update 1"},
			notOut: []string{"-listen tcp"}},
		{name: "dry run remote", args: []string{"run", "remote", "-n"}, wantOut: []string{"alice@web port 2222", "-nolisten tcp", "DISPLAY=localhost:D", "xauth -q nmerge -", "<redacted>"}},
		{name: "no display", args: []string{"run", "mine"}, env: map[string]string{"DISPLAY": ""}, wantCode: 1, wantErr: []string{"DISPLAY is not set", "make demo"}},
		{name: "no Xephyr", args: []string{"run", "mine"}, env: map[string]string{"DISPLAY": ":99", "PATH": noXephyr}, wantCode: 1, wantErr: []string{"Xephyr not found", "xvmview: hint: install it: sudo apt-get install --no-install-recommends xserver-xephyr"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
