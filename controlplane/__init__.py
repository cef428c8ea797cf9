"""A real Kubernetes control plane on this machine, for the tests and for trying releases.

Built from upstream sources through the Go module proxy (``install``), started on 127.0.0.1
(``cluster``): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok for nodes
whose pods become Ready without containers. Not part of the product: nothing under canary/,
blocks/, tasks/ or flows/ imports it.
"""
