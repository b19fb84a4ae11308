package testguest

import (
	"os/exec"
	"runtime"
)

// startHeld starts cmd, whose SysProcAttr.Pdeathsig ends it when the test
// binary dies, from an OS thread of its own that is held until done is
// closed (cmd has been waited for). Linux sends Pdeathsig when the *thread*
// that forked the child exits (golang/go#27505), and the Go runtime ends a
// thread whose goroutine exits while locked to it: xephyr.Start does that
// once each Xephyr it confines has exited. Forked from an arbitrary
// thread, an Xvfb or sshd of a test was killed whenever a later Xephyr
// had locked that thread and ended (measured: the host Xvfb of a test with
// several Xephyrs died after the first one closed). A thread locked from
// before the fork until done runs nothing else, so only cmd's own end lets
// it go.
func startHeld(cmd *exec.Cmd, done <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-done
		}
	}()
	return <-errc
}
