package xauth

import "path/filepath"

// FileName is the Xauthority file an X client uses, found as libXau's
// XauFileName finds it: $XAUTHORITY, else $HOME/.Xauthority; "" when
// neither is set. getenv reads the environment (os.Getenv, or a test's).
func FileName(getenv func(string) string) string {
	if f := getenv("XAUTHORITY"); f != "" {
		return f
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".Xauthority")
	}
	return ""
}
