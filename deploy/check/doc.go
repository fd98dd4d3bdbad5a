// Package check tests the deployment files of the repository beyond
// "they parse": deploy/Dockerfile (parsed by BuildKit's own parser),
// docker-compose.yml (as `docker-compose config` resolves it) with
// deploy/otel-collector.yaml, and deploy/kubernetes (as `kustomize build`
// renders it, every object decoded strictly into its Kubernetes API type).
//
// It is its own module, outside go.work, so that the Kubernetes and
// BuildKit modules stay out of the services' builds. Run it with
// `make deploy-check`, which installs kustomize and runs
// `docker-compose config -q` first; docker-compose and kustomize must be on
// PATH.
package check
