# Rapport's build. Two targets matter to a new user:
#   make run    runs the whole suite on local bbolt files and prints its URLs
#   make test   runs every check CI runs (vet, unit tests, generated code, suite)
# Tools are Go programs installed at pinned versions into .bin/.

SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)

BUF_VERSION                  := v1.75.0
PROTOC_GEN_GO_VERSION        := v1.36.10
PROTOC_GEN_GO_GRPC_VERSION   := v1.6.0
GRPC_GATEWAY_VERSION         := v2.33.0
GRPCURL_VERSION              := v1.9.3
# v5.8.3 needs a newer Go than go.work's.
KUSTOMIZE_VERSION            := v5.8.2

# Every module of the workspace, as import-path patterns (go build ./... does
# not work at the root of a go.work workspace).
MODULES = $(shell $(GO) list -m -f '{{.Path}}/...')

.PHONY: run build test system-deps vet unit suite generate check-generated deploy-check lint breaking tools tidy bench load fuzz clean

run: build ## Run every service and the gateway on ./data.
	./cmd/rapport/rapport serve --target=all --data-dir=./data

build:
	cd cmd/rapport && $(GO) build -o rapport .

test: system-deps tools vet check-generated deploy-check unit ## Everything CI checks.

# curl (README examples) and docker-compose (deploy-check), from Debian's
# packages when missing.
system-deps:
	./scripts/system-deps.sh curl docker-compose

vet:
	$(GO) vet $(MODULES)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# Unit, store, API, gateway and suite tests (the suite tests build and start
# the real rapport binary).
unit:
	$(GO) test -race -count=1 -timeout 15m $(MODULES)

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2 $(BIN)/grpcurl $(BIN)/kustomize

$(BIN)/buf:
	GOBIN=$(BIN) GOWORK=off $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) GOWORK=off $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) GOWORK=off $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/protoc-gen-grpc-gateway:
	GOBIN=$(BIN) GOWORK=off $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(BIN)/protoc-gen-openapiv2:
	GOBIN=$(BIN) GOWORK=off $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)

$(BIN)/grpcurl:
	GOBIN=$(BIN) GOWORK=off $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(BIN)/kustomize:
	GOBIN=$(BIN) GOWORK=off $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# The deployment files, which cannot run here (no Docker engine, no
# cluster): docker-compose and kustomize must accept them, and deploy/check
# (its own module, outside go.work) asserts what they describe: one image,
# a volume per stateful service, health checks, gRPC probes, one replica per
# bbolt file, no secret in the repository. docker-compose comes from Debian
# (.ci/run installs it).
deploy-check: $(BIN)/kustomize
	docker-compose config -q
	kustomize build deploy/kubernetes >/dev/null
	cd deploy/check && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...

third_party/googleapis:
	./scripts/googleapis.sh

generate: tools third_party/googleapis ## Regenerate gen/ from proto/.
	buf lint
	rm -rf gen/go gen/openapi/*.json
	buf generate

# Fails when the committed gen/ differs from a fresh generation.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
	  echo "gen/ is out of date with proto/: run 'make generate' and commit"; \
	  git status --short -- gen; git diff --stat -- gen; exit 1; fi

lint: tools third_party/googleapis
	buf lint

# Breaking-change check of proto/ against the main branch.
breaking: tools third_party/googleapis
	./scripts/breaking.sh main

tidy:
	for d in $$($(GO) list -m -f '{{.Dir}}') deploy/check; do (cd $$d && GOWORK=off $(GO) mod tidy) || exit 1; done

bench: ## Go benchmarks (storage layer).
	$(GO) test -run '^$$' -bench . -benchtime 3s rapport.dev/platform/boltdb/...

load: build ## The load benchmarks of BENCHMARKS.md.
	./cmd/rapport/rapport load

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRecordEventDecode -fuzztime 30s rapport.dev/services/profile/api

clean:
	rm -rf .bin third_party data cmd/rapport/rapport
