package main

import "testing"

func TestListCLI(t *testing.T) {
	cliProfiles(t)
	cliCase{name: "list", args: []string{"list"}, wantOut: []string{"demo", "mine", "my own", "broken", "BROKEN", "broken.toml:2"}}.run(t)
}
