//go:build !linux

package main

import "syscall"

// chaosProcAttr has no parent-death signal outside Linux: an interrupted
// run stops its processes itself.
func chaosProcAttr() *syscall.SysProcAttr { return nil }
