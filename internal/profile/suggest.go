package profile

import "strings"

// aliases maps names people reach for to the key they mean.
var aliases = map[string]string{
	"cmd":        "command",
	"args":       "command",
	"argv":       "command",
	"exec":       "command",
	"program":    "command",
	"wm":         "window_manager",
	"hostname":   "host",
	"guest":      "host",
	"username":   "user",
	"login":      "user",
	"identity":   "identity_file",
	"key":        "identity_file",
	"ssh_key":    "identity_file",
	"geometry":   "screen",
	"resolution": "screen",
	"size":       "screen",
	"display":    "display_host",
	"name":       "title",
	"category":   "categories",

	"colour":      "color",
	"frame_color": "color",
	"resizable":   "resizeable",
	"resize":      "resizeable",
	"full_screen": "fullscreen",
	"grab":        "host_grab",
	"keyboard":    "keyboard_layout",
	"keymap":      "keyboard_layout",
	"layout":      "keyboard_layout",
	"xkb_layout":  "keyboard_layout",
	"xkb_variant": "keyboard_variant",
	"xkb_model":   "keyboard_model",
	"xkb_options": "keyboard_options",
	"xkb_rules":   "keyboard_rules",

	"domain":          "vm",
	"libvirt_domain":  "vm",
	"domu":            "vm",
	"uri":             "vm_uri",
	"libvirt_uri":     "vm_uri",
	"connect":         "vm_uri",
	"shutdown":        "shutdown_on_exit",
	"stop_on_exit":    "shutdown_on_exit",
	"boot_wait":       "boot_timeout",
	"vm_boot_timeout": "boot_timeout",
	"vm_shutdown":     "shutdown_on_exit",
	"startup_timeout": "boot_timeout",
}

// suggest returns the profile key that an unknown key probably meant, or "".
func suggest(key string) string {
	k := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	if _, ok := keyTypes[k]; ok {
		return k
	}
	if a, ok := aliases[k]; ok {
		return a
	}
	best, bestD := "", 3
	for cand := range keyTypes {
		// Keys are short; keep the work bounded for long garbage keys.
		if len(k) > 2*len(cand) {
			continue
		}
		if d := distance(k, cand); d < bestD || d == bestD && cand < best {
			best, bestD = cand, d
		}
	}
	if bestD > len(k)/2 {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
