package testenv

import "golang.org/x/sys/unix"

// sysEpollWait is epoll_wait(2)'s number; arm64 and the other newer
// architectures have only epoll_pwait (include/uapi/asm-generic/unistd.h).
const sysEpollWait = unix.SYS_EPOLL_WAIT
