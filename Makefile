# The two set-up commands (as root on a fresh Debian 12 machine):
#   make run    install what is missing, build, start a single-node allocator with its store in ./data
#               (gRPC on 127.0.0.1:7443, Prometheus metrics on http://127.0.0.1:9464/metrics)
#   make images build the container images with buildah (deploy/images/build.sh; TAG=latest)
#   make test   install what is missing, build, build the pinned Go test tools (scripts/test-tools.sh), run every test
BUILD ?= build
JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:7443
DATA ?= ./data
METRICS ?= 127.0.0.1:9464
TAG ?= latest

.PHONY: deps build run test bench images clean

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

run: build
	mkdir -p $(DATA)
	exec $(BUILD)/allocator-service/abode-allocator --listen $(LISTEN) --data-dir $(DATA) --metrics-listen $(METRICS)

# test-tools.sh exits 77 when no Go toolchain can build the pinned test tools (the tests that need them skip),
# and fails instead when CI is set.
test: build
	./scripts/test-tools.sh || [ $$? -eq 77 ]
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

images: build
	./deploy/images/build.sh $(BUILD) $(TAG)

bench: build
	./scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD)
