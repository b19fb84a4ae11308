// Package xephyr owns the nested X server and the launcher's own X
// connections: it turns Options into Xephyr's argv, starts Xephyr and waits
// for readiness via -displayfd, stops it (SIGTERM, grace, SIGKILL), dials the
// nested display with the session cookie, verifies that the nested display
// refuses clients without the cookie, reads facts about the host display
// (size, XKB names) and takes screenshots.
//
// Security contract: the cookie reaches Xephyr only through the -auth file,
// which must exist, be private and be non-empty before Start (an X server with
// an empty or missing -auth file lets every local client in), and reaches the
// launcher's connection only in memory. No argv, error or log line built here
// contains it.
//
// Xephyr runs with -terminate TerminateDelay: TerminateDelay seconds after
// its last client left, unless another connected meanwhile, the server
// exits. A client that connects and leaves first (even one refused for
// want of the cookie) starts that clock. Start therefore never connects to
// check readiness, and callers must hold a connection of their own (Dial)
// at once, before CheckRefusesCookieless.
package xephyr
