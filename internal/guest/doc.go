// Package guest is xvmview's guest side over SSH: it resolves a guest from
// ssh_config, dials it with agent or key authentication and strict
// known_hosts checking, runs shell commands there, and starts programs that
// never outlive the SSH session. Quote and Command are the one place where
// values become remote shell code.
package guest
