// Package deploy holds no code: its tests check the deployment files
// beside it (Kubernetes manifests, the Grafana dashboard, the Prometheus
// rules) and the container image that ./image builds for `make image`.
//
// What the tests import (the Kubernetes API types, kustomize, the PromQL
// parser, go-containerregistry) is in go.mod at versions chosen so that
// ringwatch's own binary builds from the same module versions as before:
// `go list -deps -f '{{with .Module}}{{.Path}} {{.Version}}{{end}}'
// ./cmd/ringwatch` lists no module of theirs.
package deploy
