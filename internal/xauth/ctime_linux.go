package xauth

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime returns the inode change time libXau's stale-lock rule uses.
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
