// Package ringchild is test support for the host ring census: a separate
// process, the test binary run again, that owns a ring of its own and
// writes, reads or drains it on command. The census must find that ring in
// another process, with that process's pid and comm, which a ring of the
// test process itself would not show.
//
// A test package that starts children calls [Main] from its TestMain.
package ringchild
