// Command image builds ringwatch's container image without a container
// engine: for each static binary given (one per architecture), an image of
// one layer holding it as /ringwatch, all written as one OCI image layout
// in a tar file (an "oci-archive") whose index lists each image with its
// platform, so that a runtime picks its own architecture's; podman load,
// skopeo copy oci-archive:..., ctr image import and docker load (25 and
// later) all read it. `make image` runs it:
//
//	go run ./deploy/image --binary bin/ringwatch-static,bin/ringwatch-static-arm64 --version v1.2.3 --out bin/ringwatch-image.tar
//
// The image is reproducible: every timestamp in it is SOURCE_DATE_EPOCH (0
// when unset), so the same binary gives the same digest.
package main
