// Package deploy holds no code: its tests check the deployment files
// beside it (Kubernetes manifests, the Grafana dashboard, the Prometheus
// rules) and the container image that ./image builds.
//
// It is a module of its own so that what the tests need (the Kubernetes
// API types, kustomize, the PromQL parser, go-containerregistry) stays out
// of the module ringwatch is built from.
package deploy
