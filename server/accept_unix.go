package server

import "syscall"

// syscallEMFILE is "too many open files", a temporary accept error.
var syscallEMFILE = syscall.EMFILE
