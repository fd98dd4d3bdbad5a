package main

import "syscall"

// chaosProcAttr makes the kernel SIGKILL a suite process when the chaos
// command dies, so that no process outlives an interrupted run.
func chaosProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
