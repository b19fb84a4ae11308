package desktop

import (
	"fmt"
	"strings"
)

// registered holds the main and additional categories of the Desktop Menu
// Specification. Its reserved ones, which need OnlyShowIn, are left out, and
// so is DDE, which desktop-file-validate 0.26 (Debian 12) does not know yet.
var registered = func() map[string]bool {
	m := make(map[string]bool)
	for _, c := range strings.Fields(`
		AudioVideo Audio Video Development Education Game Graphics Network
		Office Science Settings System Utility

		Building Debugger IDE GUIDesigner Profiling RevisionControl Translation
		Calendar ContactManagement Database Dictionary Chart Email Finance
		FlowChart PDA ProjectManagement Presentation Spreadsheet WordProcessor
		2DGraphics VectorGraphics RasterGraphics 3DGraphics Scanning OCR
		Photography Publishing Viewer TextTools DesktopSettings HardwareSettings
		Printing PackageManager Dialup InstantMessaging Chat IRCClient Feed
		FileTransfer HamRadio News P2P RemoteAccess Telephony TelephonyTools
		VideoConference WebBrowser WebDevelopment Midi Mixer Sequencer Tuner TV
		AudioVideoEditing Player Recorder DiscBurning ActionGame AdventureGame
		ArcadeGame BoardGame BlocksGame CardGame KidsGame LogicGame RolePlaying
		Shooter Simulation SportsGame StrategyGame Art Construction Music
		Languages ArtificialIntelligence Astronomy Biology Chemistry
		ComputerScience DataVisualization Economy Electricity Geography Geology
		Geoscience History Humanities ImageProcessing Literature Maps Math
		NumericalAnalysis MedicalSoftware Physics Robotics Spirituality Sports
		ParallelComputing Amusement Archiving Compression Electronics Emulator
		Engineering FileTools FileManager TerminalEmulator Filesystem Monitor
		Security Accessibility Calculator Clock TextEditor Documentation Adult
		Core KDE GNOME XFCE GTK Qt Motif Java ConsoleOnly`) {
		m[c] = true
	}
	return m
}()

// checkCategory returns an error unless c is a registered category or an
// extension ("X-" and more).
func checkCategory(c string) error {
	if registered[c] || (strings.HasPrefix(c, "X-") && len(c) > 2) {
		return nil
	}
	for r := range registered {
		if strings.EqualFold(r, c) {
			return fmt.Errorf("category %q is not registered; did you mean %q?", c, r)
		}
	}
	return fmt.Errorf("category %q is not registered (see the Desktop Menu Specification); use a registered one like \"Network\" or an extension like \"X-%s\"", c, c)
}
