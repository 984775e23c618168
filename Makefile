# meshlm — top-level entry points. `make check` is what CI runs.
BUILD ?= build
JOBS ?= 2
GENERATOR := $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)

.PHONY: all deps configure build check demo bench bench-compare clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD)/CMakeCache.txt ]; then cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release; fi

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Tests run one at a time: each uses both cores (OpenMP), and two multi-threaded tests
# sharing two cores slow each other down many times over.
check: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/compare_pytorch.sh $(BUILD)

clean:
	rm -rf $(BUILD)
