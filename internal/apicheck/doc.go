// Package apicheck holds the public packages (pkg/...) to what they promise
// a Go user outside the module: that every exported signature names only
// public or standard types ([InternalTypes]), and that `go doc` of the
// package fits a screen ([DocLines]). Only tests import it.
package apicheck
