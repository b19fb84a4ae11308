package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xvmview/xvmview/internal/session"
)

// vmHint is hintFor's part for the errors about a profile's VM (its libvirt
// domain), or "".
func vmHint(err error) string {
	var (
		nd *session.VMNoDaemonError
		pe *session.VMPermissionError
		ce *session.VMConnectError
		ud *session.VMUnknownDomainError
		se *session.VMStartError
		st *session.VMStateError
		bt *session.VMBootTimeoutError
		sp *session.VMStoppedError
		nv *session.NoVMError
		iu *session.VMInUseError
	)
	switch {
	case errors.As(err, &nd):
		return "start libvirt (systemctl start libvirtd, or virtqemud/virtxend for the modular daemons), and check the profile's vm_uri"
	case errors.As(err, &pe):
		return fmt.Sprintf("add yourself to the libvirt group (sudo adduser $USER libvirt, then log in again) or allow org.libvirt.unix.manage in polkit; `virsh -c %s list` must work for you", pe.URI)
	case errors.As(err, &ce):
		return fmt.Sprintf("check the profile's vm_uri; `virsh -c %s list --all` shows the same error", ce.URI)
	case errors.As(err, &ud) && len(ud.Known) > 0:
		return fmt.Sprintf("its domains: %s; fix the profile's vm key", strings.Join(ud.Known, ", "))
	case errors.As(err, &ud):
		return fmt.Sprintf("`virsh -c %s list --all` lists the domains; fix the profile's vm key (and vm_uri: a domain of qemu:///session is not one of qemu:///system)", ud.URI)
	case errors.As(err, &se):
		return fmt.Sprintf("`virsh -c %s %s %s` shows the same; the hypervisor's log is under /var/log/libvirt/", se.URI, se.Action, se.Domain)
	case errors.As(err, &st):
		return fmt.Sprintf("look at it with `virsh -c %s dominfo %s`; after `virsh destroy` xvmview starts it again", st.URI, st.Domain)
	case errors.As(err, &bt):
		return fmt.Sprintf("a slow VM needs a longer boot_timeout in the profile (seconds); else check on its console (virsh console %s) that sshd starts and that the profile's host and port reach it", bt.Domain)
	case errors.As(err, &nv):
		return `add vm = "DOMAIN" (the libvirt domain behind the guest) to the profile`
	case errors.As(err, &iu):
		return "end those sessions first ('xvmview stop ID'; 'xvmview ps' lists them): a session's end shuts the VM down by itself when its profile says shutdown_on_exit"
	case errors.As(err, &sp):
		return fmt.Sprintf("its console (virsh console %s) or the hypervisor's log under /var/log/libvirt/ tells why", sp.Domain)
	}
	return ""
}
