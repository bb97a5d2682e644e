# seekserve: the two commands a newcomer runs are `make run` and `make test`.
BUILD_DIR ?= build
FUZZ_DIR ?= build-fuzz
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup build run demo test unit format format-check fuzz bench clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The server on the demo model (tiny-v3, made on first use) at 127.0.0.1:8000; it prints a
# ready-to-paste curl request. Ctrl-C drains and stops it.
run: build
	@$(BUILD_DIR)/seekserve serve --host 127.0.0.1 --port 8000

# The demo model through inspect, tokenize, a chat template and generate.
demo: build
	@scripts/run-demo.sh $(BUILD_DIR)/seekserve

# Fuzzing first, so that ctest's summary ("100% tests passed, 0 tests failed out of N") closes
# the output.
test: build format-check
	@scripts/fuzz.sh 30
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

unit: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

format:
	@git ls-files --cached --others --exclude-standard '*.cpp' '*.h' | xargs clang-format -i

format-check:
	@git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror

# Each parser's libFuzzer target for SECONDS seconds under ASan+UBSan: make fuzz SECONDS=300
SECONDS ?= 60
fuzz: setup
	@scripts/fuzz.sh $(SECONDS)

bench: build
	@cmake --build $(BUILD_DIR) --target benches -j $(JOBS)
	@scripts/bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR)
