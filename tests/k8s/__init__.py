"""The Kubernetes manifests (deploy/k8s/) rendered by kustomize and checked without a cluster."""
