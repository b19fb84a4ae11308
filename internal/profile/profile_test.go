package profile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const minimal = `host = "web"
command = ["firefox"]
`

func TestParseGood(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want Profile
	}{
		{
			name: "minimal remote gets defaults",
			doc:  minimal,
			want: Profile{
				Host: "web", Command: []string{"firefox"},
				Screen: "1280x1024", Title: "[p] firefox on web", Transport: "ssh",
			},
		},
		{
			name: "every key",
			doc: `description = "Firefox in the web domU"
host = "web"
user = "alice"
port = 2222
identity_file = "~/.ssh/id_ed25519"
command = ["/usr/bin/firefox", "--no-remote"]
window_manager = ["twm", "-f", "/etc/twmrc"]
screen = "1600x900x24"
title = "Web [firefox]"
transport = "tcp"
display_host = "10.1.0.1"
icon = "firefox"
categories = ["Network", "WebBrowser"]
dpi = 144
fullscreen = true
resizeable = false
host_grab = true
keyboard_rules = "evdev"
keyboard_model = "pc105"
keyboard_layout = "us,de"
keyboard_variant = ",nodeadkeys"
keyboard_options = "ctrl:nocaps,compose:ralt"
color = "#cc0000"
xephyr_memory = "768M"
`,
			want: Profile{
				Description: "Firefox in the web domU", Host: "web", User: "alice", Port: 2222,
				IdentityFile: "~/.ssh/id_ed25519", Command: []string{"/usr/bin/firefox", "--no-remote"},
				WindowManager: []string{"twm", "-f", "/etc/twmrc"}, Screen: "1600x900x24",
				Title: "[p] Web [firefox]", Transport: "tcp", DisplayHost: "10.1.0.1", Icon: "firefox",
				Categories: []string{"Network", "WebBrowser"}, DPI: 144, Fullscreen: true, FixedSize: true, HostGrab: true,
				Color: "#cc0000", XephyrMemory: 768 << 20, Keyboard: Keyboard{Rules: "evdev", Model: "pc105", Layout: "us,de", Variant: ",nodeadkeys", Options: "ctrl:nocaps,compose:ralt"},
			},
		},
		{
			name: "local ignores transport",
			doc: `host = "local"
command = ["xeyes"]
window_manager = ["twm"]
transport = "tcp"
`,
			want: Profile{
				Host: "local", Command: []string{"xeyes"}, WindowManager: []string{"twm"},
				Screen: "1280x1024", Title: "[p] xeyes (local)",
			},
		},
		{
			name: "default title uses the program's base name",
			doc:  "host = \"web\"\ncommand = [\"/opt/firefox/firefox\"]\n",
			want: Profile{
				Host: "web", Command: []string{"/opt/firefox/firefox"},
				Screen: "1280x1024", Title: "[p] firefox on web", Transport: "ssh",
			},
		},
		{
			name: "display_host hostname, IPv6 and quoted keys",
			doc:  "\"host\" = 'web.example.org'\ncommand = ['xterm', '-e', 'sh -c \"top\"']\ndisplay_host = \"fd00::1\"\n",
			want: Profile{
				Host: "web.example.org", Command: []string{"xterm", "-e", `sh -c "top"`},
				Screen: "1280x1024", Title: "[p] xterm on web.example.org", Transport: "ssh",
				DisplayHost: "fd00::1",
			},
		},
		{
			name: "max_x_connections",
			doc:  "host = \"web\"\ncommand = [\"xterm\"]\nmax_x_connections = 250\n",
			want: Profile{
				Host: "web", Command: []string{"xterm"},
				Screen: "1280x1024", Title: "[p] xterm on web", Transport: "ssh", MaxXConnections: 250,
			},
		},
		{
			name: "multi-line command, later args may have newlines",
			doc:  "host = \"web\"\ncommand = [\n  \"sh\",\n  \"-c\",\n  \"\"\"\nexec xterm\n\"\"\",\n]\n",
			want: Profile{
				Host: "web", Command: []string{"sh", "-c", "exec xterm\n"},
				Screen: "1280x1024", Title: "[p] sh on web", Transport: "ssh",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("p", "p.toml", []byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.Name, tt.want.Source = "p", "p.toml"
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got  %#v\n want %#v", got, tt.want)
			}
			if got.Local() != (tt.want.Host == "local") {
				t.Errorf("Local() = %v for host %q", got.Local(), got.Host)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		// want is the whole error text after "web.toml:".
		want string
	}{
		// Unknown keys.
		{"misspelt key", minimal + "\ncomand = [\"x\"]\n", `4:1: unknown key "comand" (did you mean "command"?)`},
		{"dashed key", minimal + "window-manager = [\"twm\"]\n", `3:1: unknown key "window-manager" (did you mean "window_manager"?)`},
		{"alias", minimal + "wm = [\"twm\"]\n", `3:1: unknown key "wm" (did you mean "window_manager"?)`},
		{"unrelated key", minimal + "flavour = \"blue\"\n", `3:1: unknown key "flavour"`},
		{"two unknown keys", minimal + "prot = 22\nfoo = 1\n", `3:1: unknown key "prot" (did you mean "port"?) and 1 more unknown key`},
		{"dotted unknown key", minimal + "ssh.port = 22\n", `3:1: unknown key "ssh.port"`},
		{"table", minimal + "[ssh]\nport = 22\n", `3:2: unknown table "ssh" (a profile has no tables)`},

		// Syntax errors.
		{"unterminated string", "host = \"web\ncommand = [\"x\"]\n", `1:12: basic strings cannot have new lines`},
		{"missing value", "host = \"web\"\n\ncommand = \n", `3:11: unexpected character U+000A at start of value`},
		{"duplicate key", minimal + "host = \"other\"\n", `3:1: key host is already defined`},

		// Wrong types.
		{"port string", minimal + "port = \"x\"\n", `3:8: port must be an integer from 1 to 65535, not a string`},
		{"port float", minimal + "port = 22.5\n", `3:8: port must be an integer from 1 to 65535, not a float`},
		{"command string", "host = \"web\"\ncommand = \"firefox --no-remote\"\n", `2:11: command must be a list of strings, e.g. ["xterm"], not a string`},
		{"command element integer", "host = \"web\"\ncommand = [\"a\", 1]\n", `2:17: command must be a list of strings, e.g. ["xterm"], not an integer`},
		{"host table", "host = {name = \"web\"}\ncommand = [\"x\"]\n", `1:8: host must be a string, not an inline table`},
		{"command table", "host = \"web\"\n[command]\nx = 1\n", `2:2: command must be a list of strings, e.g. ["xterm"], not a table`},
		{"port too big for int64", minimal + "port = 99999999999999999999\n", `3:8: port: decimal number is too large to fit in a 64-bit signed integer`},

		// Missing keys.
		{"no host", "command = [\"x\"]\n", ` missing key "host" (an ssh_config Host alias, a hostname, or "local" for this machine)`},
		{"no command", "host = \"web\"\n", ` missing key "command" (the program to run and its arguments, e.g. command = ["xterm"])`},
		{"empty file", "", ` missing key "host" (an ssh_config Host alias, a hostname, or "local" for this machine)`},

		// Bad values.
		{"empty host", "host = \"\"\ncommand = [\"x\"]\n", `1:8: host is empty; give an ssh_config Host alias, a hostname, or "local"`},
		{"host with space", "host = \"web domu\"\ncommand = [\"x\"]\n", `1:8: host "web domu" has a space or control character`},
		{"host option", "host = \"-oProxyCommand=x\"\ncommand = [\"x\"]\n", `1:8: host "-oProxyCommand=x" starts with "-"`},
		{"host with user", "host = \"alice@web\"\ncommand = [\"x\"]\n", `1:8: host "alice@web" has an "@"; put the user name in user = "..."`},
		{"host newline", "host = \"web\\n\"\ncommand = [\"x\"]\n", `1:8: host "web\n" has a space or control character`},
		{"empty command", "host = \"web\"\ncommand = []\n", `2:1: command is empty; give the program and its arguments, e.g. command = ["xterm"]`},
		{"empty argument", "host = \"web\"\ncommand = [\"firefox\",\n  \"\"]\n", `3:3: command[1] is an empty string`},
		{"command as one string", "host = \"web\"\ncommand = [\"firefox --no-remote\"]\n", `2:12: command[0] "firefox --no-remote" has spaces; command is a list with one string per argument: command = ["firefox", "--no-remote"]`},
		{"command option", "host = \"web\"\ncommand = [\"-x\"]\n", `2:12: command[0] "-x" starts with "-"; it must be a program name or path`},
		{"command control", "host = \"web\"\ncommand = [\"x\\u0007\"]\n", `2:12: command[0] "x\a" has a space or control character; it must be a program name or path`},
		{"empty window manager", minimal + "window_manager = []\n", `3:1: window_manager is empty; remove it to run without one`},
		{"port zero", minimal + "port = 0\n", `3:8: port 0 is out of range (1..65535)`},
		{"port too big", minimal + "port = 65536\n", `3:8: port 65536 is out of range (1..65535)`},
		{"port negative", minimal + "port = -1\n", `3:8: port -1 is out of range (1..65535)`},
		{"empty user", minimal + "user = \"\"\n", `3:8: user is empty; remove it to use the user from ssh_config`},
		{"user option", minimal + "user = \"-l\"\n", `3:8: user "-l" is not a user name (no spaces, control characters or "@", no leading "-")`},
		{"empty identity", minimal + "identity_file = \"\"\n", `3:17: identity_file "" is not a file name`},
		{"screen no height", minimal + "screen = \"1280\"\n", `3:10: screen "1280" is not WIDTHxHEIGHT or WIDTHxHEIGHTxDEPTH (e.g. "1280x1024")`},
		{"screen junk", minimal + "screen = \"1280x1024+0+0\"\n", `3:10: screen "1280x1024+0+0" is not WIDTHxHEIGHT or WIDTHxHEIGHTxDEPTH (e.g. "1280x1024")`},
		{"screen too small", minimal + "screen = \"10x10\"\n", `3:10: screen "10x10" is out of range: width and height must be from 64 to 16384`},
		{"screen too big", minimal + "screen = \"99999x1024\"\n", `3:10: screen "99999x1024" is out of range: width and height must be from 64 to 16384`},
		{"xephyr_memory no unit", minimal + "xephyr_memory = \"512\"\n", `3:17: xephyr_memory "512" is not a size in M or G, e.g. "512M" or "2G"`},
		{"xephyr_memory bytes", minimal + "xephyr_memory = \"512k\"\n", `3:17: xephyr_memory "512k" is not a size in M or G, e.g. "512M" or "2G"`},
		{"xephyr_memory integer", minimal + "xephyr_memory = 512\n", `3:17: xephyr_memory must be a string, e.g. "512M" or "2G", not an integer`},
		{"xephyr_memory too small", minimal + "xephyr_memory = \"32M\"\n", `3:17: xephyr_memory "32M" is out of range: from 64M to 1024G`},
		{"xephyr_memory too big", minimal + "xephyr_memory = \"2048G\"\n", `3:17: xephyr_memory "2048G" is out of range: from 64M to 1024G`},
		{"screen depth", minimal + "screen = \"1280x1024x7\"\n", `3:10: screen "1280x1024x7" has depth 7; use one of [8 15 16 24 32]`},
		{"empty title", minimal + "title = \"\"\n", `3:9: title is empty; remove it for the default title`},
		{"title option", minimal + "title = \"-fullscreen\"\n", `3:9: title "-fullscreen" starts with "-"`},
		{"title control", minimal + "title = \"a\\tb\"\n", `3:9: title "a\tb" has a control character`},
		{"transport other", minimal + "transport = \"udp\"\n", `3:13: transport "udp" is not one of: "ssh" (default), "tcp"`},
		{"transport bad on local", "host = \"local\"\ncommand = [\"x\"]\ntransport = \"udp\"\n", `3:13: transport "udp" is not one of: "ssh" (default), "tcp"`},
		{"display_host junk", minimal + "display_host = \"10.1.0.1:0\"\n", `3:16: display_host "10.1.0.1:0" is not an IP address or hostname: ':' is not a letter, digit or "-"`},
		{"display_host empty label", minimal + "display_host = \"a..b\"\n", `3:16: display_host "a..b" is not an IP address or hostname: each dot-separated label must have 1 to 63 characters`},
		{"max_x_connections zero", minimal + "max_x_connections = 0\n", `3:21: max_x_connections 0 is out of range (1..250: Xephyr serves 255 clients, one is xvmview's own)`},
		{"max_x_connections too big", minimal + "max_x_connections = 251\n", `3:21: max_x_connections 251 is out of range (1..250: Xephyr serves 255 clients, one is xvmview's own)`},
		{"max_x_connections with tcp", minimal + "transport = \"tcp\"\nmax_x_connections = 10\n", `4:21: max_x_connections applies to transport "ssh" only; remove it or the transport line`},
		{"local with max_x_connections", "host = \"local\"\ncommand = [\"x\"]\nmax_x_connections = 9\n", `3:21: max_x_connections is only for remote guests; remove it from this profile (host = "local")`},
		{"local with user", "host = \"local\"\ncommand = [\"x\"]\nuser = \"alice\"\n", `3:8: user is only for remote guests; remove it from this profile (host = "local")`},
		{"local with port", "host = \"local\"\ncommand = [\"x\"]\nport = 22\n", `3:8: port is only for remote guests; remove it from this profile (host = "local")`},
		{"local with display_host", "host = \"local\"\ncommand = [\"x\"]\ndisplay_host = \"10.0.0.1\"\n", `3:16: display_host is only for remote guests; remove it from this profile (host = "local")`},
		{"description newline", minimal + "description = \"a\\nb\"\n", `3:15: description "a\nb" has a control character; it must be one line of text`},
		{"bad category", minimal + "categories = [\"Network\", \"A;B\"]\n", `3:26: category "A;B" is not a desktop entry category (letters, digits, "-" and "_", e.g. "Network")`},
		{"empty icon", minimal + "icon = \"\"\n", `3:8: icon "" is not an icon name or file name`},
		{"first problem wins", "host = \"\"\ncommand = []\n", `1:8: host is empty; give an ssh_config Host alias, a hostname, or "local"`},
		{"too large", "description = \"" + strings.Repeat("x", MaxSize) + "\"\n", ` file is 65553 bytes, more than the 65536 a profile may have`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const src = "web.toml"
			_, err := Parse("web", src, []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if got := strings.TrimPrefix(err.Error(), src+":"); got != tt.want {
				t.Errorf("error\n got  %s\n want %s", got, tt.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if pe.Source != src {
				t.Errorf("Source = %q, want %q", pe.Source, src)
			}
		})
	}
}

func TestParseBadName(t *testing.T) {
	_, err := Parse("../web", "x.toml", []byte(minimal))
	var pe *Error
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "x.toml: profile name") {
		t.Fatalf("Parse with a bad name: %v, want an *Error about the name", err)
	}
}

func TestErrorKey(t *testing.T) {
	_, err := Parse("web", "web.toml", []byte(minimal+"screen = \"1\"\n"))
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("Parse: %v, want an *Error", err)
	}
	if pe.Key != "screen" || pe.Line != 3 || pe.Column != 10 {
		t.Errorf("Error = %+v, want Key screen at 3:10", pe)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want string // substring of the error; "" = valid
	}{
		{"web", ""},
		{"firefox-domu", ""},
		{"a", ""},
		{"Web_2.test", ""},
		{"0day", ""},
		{strings.Repeat("a", 64), ""},
		{"", "empty"},
		{strings.Repeat("a", 65), "65 characters long, more than 64"},
		{"a/b", `has a "/"; give the name of a profile (see ` + "`xvmview list`" + `), not a path`},
		{"/etc/passwd", `has a "/"`},
		{`a\b`, `has a "\\"`},
		{"..", `has ".."`},
		{"a..b", `has ".."`},
		{"web.toml", `ends in .toml; leave it out: "web"`},
		{"-web", `starts with "-"`},
		{".web", `has "."; use letters`},
		{"_web", `has "_"`},
		{"my web", `has " "`},
		{"web\n", `has "\n"`},
		{"wéb", `has "é"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.name)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ValidName(%q) = %v, want nil", tt.name, err)
			case tt.want != "" && err == nil:
				t.Errorf("ValidName(%q) = nil, want an error with %q", tt.name, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("ValidName(%q) = %v, want an error with %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestParseScreen(t *testing.T) {
	tests := []struct {
		in      string
		want    Screen
		wantErr bool
	}{
		{"1280x1024", Screen{1280, 1024, 0}, false},
		{"64x64x8", Screen{64, 64, 8}, false},
		{"16384x16384x32", Screen{16384, 16384, 32}, false},
		{"800x600x16", Screen{800, 600, 16}, false},
		{"63x600", Screen{}, true},
		{"800x16385", Screen{}, true},
		{"800x600x0", Screen{}, true},
		{"800X600", Screen{}, true},
		{"x600", Screen{}, true},
		{"800x", Screen{}, true},
		{"+800x600", Screen{}, true},
		{"800x600x24x1", Screen{}, true},
		{"0000000800x600", Screen{}, true},
		{"", Screen{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScreen(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseScreen(%q) error = %v, want error: %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseScreen(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if err == nil && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ in, want string }{
		{"comand", "command"},
		{"commands", "command"},
		{"Command", "command"},
		{"usr", "user"},
		{"identityfile", "identity_file"},
		{"display-host", "display_host"},
		{"resolution", "screen"},
		{"xyz", ""},
		{"x", ""},
		{strings.Repeat("z", 100), ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := suggest(tt.in); got != tt.want {
				t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestKeyTypesMatchFile(t *testing.T) {
	// keyTypes drives suggestions and type messages: it must name exactly
	// the keys the decoder knows.
	ft := reflect.TypeFor[file]()
	if ft.NumField() != len(keyTypes) {
		t.Errorf("file has %d fields, keyTypes %d keys", ft.NumField(), len(keyTypes))
	}
	for f := range ft.Fields() {
		if _, ok := keyTypes[f.Tag.Get("toml")]; !ok {
			t.Errorf("key %q of file is missing from keyTypes", f.Tag.Get("toml"))
		}
	}
}
