package main

import "testing"

func TestRunCLI(t *testing.T) {
	cliProfiles(t)
	noXephyr := t.TempDir() // a PATH without Xephyr
	tests := []cliCase{
		{name: "run help", args: []string{"run", "--help"}, wantOut: []string{"--dry-run", "--verbose", "exit status is the app's"}},
		{name: "run without profile", args: []string{"run"}, wantCode: 2, wantErr: []string{"xvmview: error: run needs a profile", "xvmview: hint:"}},
		{name: "extra args without dashes", args: []string{"run", "demo", "x"}, wantCode: 2, wantErr: []string{`unexpected argument "x"`, "after --"}},
		{name: "bad profile name", args: []string{"run", "../etc/passwd"}, wantCode: 2, wantErr: []string{"../etc/passwd"}},
		{name: "unknown profile", args: []string{"run", "nosuch"}, wantCode: 1, wantErr: []string{"nosuch", "xvmview list"}},
		{name: "broken profile", args: []string{"run", "broken"}, wantCode: 1, wantErr: []string{"broken.toml:2", "comand"}},
		{name: "dry run local", args: []string{"run", "mine", "--dry-run", "--", "-update", "1"}, wantOut: []string{
			"-displayfd 3", "-auth ", "-reset -terminate 5", "-name xvmview-mine", "DISPLAY=:N", "xclock -update 1"},
			notOut: []string{"-listen tcp"}},
		{name: "dry run remote", args: []string{"run", "remote", "-n"}, wantOut: []string{"alice@web port 2222", "-nolisten tcp", "DISPLAY=localhost:D", "XAUTHORITY=$XDG_RUNTIME_DIR/xvmview.XXXXXXXXXX/Xauthority", "nmerge -", "<redacted>"}},
		{name: "no display", args: []string{"run", "mine"}, env: map[string]string{"DISPLAY": ""}, wantCode: 1, wantErr: []string{"DISPLAY is not set", "make demo"}},
		{name: "no Xephyr", args: []string{"run", "mine"}, env: map[string]string{"DISPLAY": ":99", "PATH": noXephyr}, wantCode: 1, wantErr: []string{"Xephyr not found", "xvmview: hint: install it: sudo apt-get install --no-install-recommends xserver-xephyr"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
