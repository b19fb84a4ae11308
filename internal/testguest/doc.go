// Package testguest provides throwaway real peers for end-to-end tests and
// benchmarks: an SSH guest on this machine (a network namespace reached over
// a veth pair, a dedicated user, a private sshd) and a host X display (Xvfb).
//
// New allocates index N in 1..200 by creating the network namespace xvt-N,
// which fails if it exists, so test binaries running at the same time, and
// leftovers of crashed runs, never collide. From N follow the subnet
// 10.213.N.0/30 (host end 10.213.N.1 in the root namespace, guest 10.213.N.2
// inside), the veth pair xvtNh/xvtNg, the user and group xvtN with home
// /home/xvtN, and the ssh_config alias xvt-N. sshd (/usr/sbin/sshd, its own
// config, host key and PID file) listens on 10.213.N.2:22 inside the
// namespace. Keys, known_hosts and configs live in a private 0700 Dir.
//
// Close removes exactly what New made: it SIGKILLs, by PID, the processes
// inside the namespace or running as the guest user, then removes the veth,
// the user with home and group, Dir, and last the namespace. A crashed run
// leaves its N reserved (later runs skip it); remove such leftovers by hand
// with `ip netns del xvt-N; userdel -r xvtN`.
//
// The core API (New, NewXvfb) needs no *testing.T, so programs under bench/
// can use it; Start and StartXvfb wrap it for tests through TB, skipping on a
// *PrereqError unless CI=true. Creating a guest needs root, iproute2,
// openssh-server, passwd and util-linux (setpriv); the tests also use
// openssh-client, xvfb and x11-utils.
package testguest
