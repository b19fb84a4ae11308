package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// baseDirs are the XDG base directories of one invocation, read from its
// Env rather than the process's environment (a test's Env is honoured).
type baseDirs struct {
	ConfigHome string // profiles: ConfigHome/xvmview/profiles
	DataHome   string // menu entries: DataHome/applications
	StateHome  string // session logs
	RuntimeDir string // session directories
}

// xdgDirs reads the XDG base directories with getenv as the XDG Base
// Directory spec and github.com/adrg/xdg (which xvmview used before) do: a
// variable that is unset, empty or not an absolute path (after ~ and $HOME
// at its start are expanded) is ignored and the default used,
// HOME/.config, HOME/.local/share, HOME/.local/state and /run/user/UID;
// HOME itself defaults to "/".
func xdgDirs(getenv func(string) string) baseDirs {
	home := getenv("HOME")
	if home == "" {
		home = "/"
	}
	path := func(name, fallback string) string {
		v := getenv(name)
		switch {
		case strings.HasPrefix(v, "~"):
			v = filepath.Join(home, v[1:])
		case strings.HasPrefix(v, "$HOME"):
			v = filepath.Join(home, v[len("$HOME"):])
		}
		if v != "" && filepath.IsAbs(v) {
			return v
		}
		return fallback
	}
	return baseDirs{
		ConfigHome: path("XDG_CONFIG_HOME", filepath.Join(home, ".config")),
		DataHome:   path("XDG_DATA_HOME", filepath.Join(home, ".local", "share")),
		StateHome:  path("XDG_STATE_HOME", filepath.Join(home, ".local", "state")),
		RuntimeDir: path("XDG_RUNTIME_DIR", filepath.Join("/run/user", strconv.Itoa(os.Getuid()))),
	}
}
