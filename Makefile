# meshlm — top-level entry points. `make check` is what CI runs.
BUILD ?= build
JOBS ?= 2
GENERATOR := $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)

.PHONY: all deps configure build check test-fast demo bench bench-compare fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD)/CMakeCache.txt ]; then cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release; fi

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The unit tier runs two at a time (see test-fast); every other test runs alone: each uses both
# cores (OpenMP or several ranks), and two such tests sharing two cores slow each other down many
# times over. Both parts always run; check fails if either does.
check: build
	@cd $(BUILD) && rc=0; \
	OMP_WAIT_POLICY=passive ctest --output-on-failure --timeout 600 -L '^unit$$' -j $(JOBS) || rc=1; \
	ctest --output-on-failure --timeout 600 -LE '^unit$$' || rc=1; \
	exit $$rc

# The unit tier only (tests/CMakeLists.txt lists the tiers): under a minute. Two at a time, since
# in a CUDA build most of a unit test's time is the process starting up (the CUDA libraries'
# initialisers); idle OpenMP threads sleep instead of spinning, so that two tests sharing the
# cores do not slow each other down many times over.
test-fast: build
	cd $(BUILD) && OMP_WAIT_POLICY=passive ctest --output-on-failure --timeout 600 -L '^unit$$' -j $(JOBS)

# libFuzzer over every parser of outside input (fuzz/): a separate clang build with the address
# and undefined-behaviour sanitizers, then each target for FUZZ_SECONDS, one at a time
# (FUZZ_TARGETS picks some). CI replays the corpora instead (the unit test fuzz.replay).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz:
	@if [ ! -f $(FUZZ_BUILD)/CMakeCache.txt ]; then cmake -S . -B $(FUZZ_BUILD) $(GENERATOR) -DMESHLM_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release; fi
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	bash scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/compare_pytorch.sh $(BUILD)

clean:
	rm -rf $(BUILD)
