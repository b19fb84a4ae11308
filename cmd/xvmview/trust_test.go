package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTrustCLI(t *testing.T) {
	home, _ := everydayHome(t)
	writeProfile(t, home, "loc", "host = \"local\"\ncommand = [\"sh\"]\n")
	writeProfile(t, home, "gone", "host = \"127.0.0.1\"\nport = 1\ncommand = [\"xterm\"]\n")
	tests := []cliCase{
		{name: "no profile", args: []string{"trust"}, wantCode: 2, wantErr: []string{"trust needs a profile name"}},
		{name: "local profile", args: []string{"trust", "loc"}, wantCode: 1, wantErr: []string{"profile loc runs on this machine"}},
		{name: "unreachable", args: []string{"trust", "gone"}, wantCode: 1, wantErr: []string{"cannot reach guest at 127.0.0.1:1", "xvmview: hint: is the guest running"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh")); err == nil {
		t.Error("trust created ~/.ssh although it added nothing")
	}
}
