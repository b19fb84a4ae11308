package testguest

import (
	"context"
	"fmt"
)

// Link makes guest to reachable from inside g's network namespace, at its
// own address to.Addr, through a veth pair between the two namespaces (the
// host does not route between guests). It returns g's address on that link,
// which to's sshd logs as the source of connections that came through g: a
// jump host test can tell a hop through g from a direct connection. Both
// ends go away with the namespaces, when either guest is closed.
func (g *Guest) Link(ctx context.Context, to *Guest) (string, error) {
	a, b := g.s.n, to.s.n
	ga, ta := fmt.Sprintf("10.216.%d.%d", a, b), fmt.Sprintf("10.217.%d.%d", a, b)
	gl, tl := fmt.Sprintf("xvl%dto%d", a, b), fmt.Sprintf("xvl%dfrom%d", b, a)
	steps := [][]string{
		{"link", "add", gl, "netns", g.Namespace, "type", "veth", "peer", "name", tl, "netns", to.Namespace},
		{"-n", g.Namespace, "addr", "add", ga, "peer", ta, "dev", gl},
		{"-n", to.Namespace, "addr", "add", ta, "peer", ga, "dev", tl},
		{"-n", g.Namespace, "link", "set", gl, "up"},
		{"-n", to.Namespace, "link", "set", tl, "up"},
		{"-n", g.Namespace, "route", "add", to.Addr + "/32", "via", ta, "dev", gl},
	}
	for _, args := range steps {
		if err := run(ctx, g.s.ip, args...); err != nil {
			return "", fmt.Errorf("link test guest %s to %s: %w", g.Namespace, to.Namespace, err)
		}
	}
	return ga, nil
}
