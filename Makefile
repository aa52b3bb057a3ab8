# Entry points; the build itself is CMake's. Each target does its own set-up.
BUILD ?= build
SAN_BUILD ?= build-sanitize
JOBS ?= 2

.PHONY: all setup build build-sanitize check check-fast demo bench clean

all: build

setup:
	@scripts/setup

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-sanitize: setup
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCRYO_SANITIZE=ON >/dev/null
	cmake --build $(SAN_BUILD) -j$(JOBS)

# The whole suite: unit tests (plain and sanitized), small test guests on this
# machine's /dev/kvm, then real Linux guests in the nested test host.
check: build build-sanitize
	tests/run-all --build $(BUILD) --sanitize-build $(SAN_BUILD)

# Everything except the Linux guests in the nested test host.
check-fast: build build-sanitize
	tests/run-all --build $(BUILD) --sanitize-build $(SAN_BUILD) --no-linux

demo: build
	scripts/demo --build $(BUILD)

bench: build
	bench/run --build $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
