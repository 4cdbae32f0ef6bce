# prbot - the only build system. `make` builds ./prbot, `make test` runs every
# test, `make test-asan` runs them again under AddressSanitizer + UBSan,
# `make coverage` reports the line coverage of engine/ and bot/,
# `make bench` measures speed, `make demo` is the newcomer's first command,
# `make eval` measures how well a model reviews (EVAL_MODEL=path.gguf).
#
# Sources are picked up by wildcard: engine/*.c, engine/kernels/*.c, bot/*.c.
# SIMD kernel files are named by ISA (*_avx2.c, *_avx512.c, *_neon.c) and get
# their ISA flags here; everything else is built for the baseline CPU, and the
# dispatch table picks kernels at run time.

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
BUILD   ?= build
SAN     ?=
PKGS    := libcurl jansson libgit2 openblas libmicrohttpd

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(PKG_LIBS),)
PKG_CFLAGS := -I/usr/include/x86_64-linux-gnu/openblas-pthread
PKG_LIBS   := -lcurl -ljansson -lgit2 -lopenblas -lmicrohttpd
endif

ALL_CFLAGS := -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -Wshadow -pthread \
              -fno-strict-aliasing $(PKG_CFLAGS) $(SAN) $(CFLAGS)
LDLIBS     := $(PKG_LIBS) -lm -pthread $(SAN)

ARCH := $(shell $(CC) -dumpmachine)
# The x86 kernels start on a 64-byte boundary: where a hot loop sits relative
# to the fetch blocks then depends on its own function's code only, so a change
# elsewhere in the binary cannot move a kernel's speed (see docs/PERFORMANCE.md).
ifneq (,$(findstring x86_64,$(ARCH)))
FLAGS_avx2   := -mavx2 -mfma -mf16c -falign-functions=64
FLAGS_avx512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -falign-functions=64
else
FLAGS_avx2   :=
FLAGS_avx512 :=
endif

ENGINE_SRC := $(wildcard engine/*.c engine/kernels/*.c)
BOT_SRC    := $(filter-out bot/main.c,$(wildcard bot/*.c))
LIB_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(ENGINE_SRC) $(BOT_SRC))
MAIN_OBJ   := $(BUILD)/bot/main.o
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BIN   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))

PRBOT ?= ./prbot

.PHONY: all test test-asan coverage bench demo eval static clean tests-build fuzz fuzz-build

all: $(PRBOT)

$(PRBOT): $(MAIN_OBJ) $(BUILD)/libprbot.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/libprbot.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FLAGS_avx2) -MMD -MP -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FLAGS_avx512) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libprbot.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Iengine -Ibot -o $@ $< $(BUILD)/libprbot.a $(LDLIBS)

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libprbot.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Iengine -Ibot -o $@ $< $(BUILD)/libprbot.a $(LDLIBS)

tests-build: $(PRBOT) $(TEST_BIN) $(TOOL_BIN)

# The README's test command: installs what a fresh machine lacks (tests/setup.sh
# only acts on what is missing), builds, runs everything. PRBOT_TESTDATA
# defaults to ../shared/testdata.
test:
	bash tests/setup.sh --test >/dev/null
	$(MAKE) tests-build
	PRBOT=$(PRBOT) TEST_BIN_DIR=$(BUILD)/tests TOOL_BIN_DIR=$(BUILD)/tools bash tests/run.sh

# (the ARM64 tests under qemu are a cross build without sanitizers: make test runs them once)
test-asan:
	PRBOT_AARCH64_TESTS=0 $(MAKE) test BUILD=build-asan PRBOT=build-asan/prbot OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

# Line coverage (gcc --coverage, read with gcov) of engine/ and bot/ over
# `make test` plus a dry-run review of this checkout's last commit, per file
# and in total, and the functions nothing ran (tests/coverage.sh). Failing
# tests do not stop the report. Built in build-cov.
coverage:
	@if [ -d build-cov ]; then find build-cov -name "*.gcda" -delete; fi
	-$(MAKE) test BUILD=build-cov PRBOT=build-cov/prbot OPT=-O1 SAN=--coverage
	bash tests/coverage.sh build-cov

bench: $(PRBOT) $(TOOL_BIN)
	PRBOT=$(PRBOT) TOOL_BIN_DIR=$(BUILD)/tools bash tests/bench.sh

demo:
	@bash tests/demo.sh

# Reviews the PR fixtures in tests/eval/fixtures and prints a table of scores
# (only reports, never fails on one). EVAL_FIXTURES="c-off-by-one py-clean"
# runs a few; EVAL_MODEL, EVAL_MAX_TOKENS, EVAL_TIME_BUDGET: see tests/eval/eval.py.
eval: $(PRBOT)
	bash tests/setup.sh >/dev/null
	PRBOT=$(PRBOT) python3 tests/eval/eval.py $(EVAL_FIXTURES)

static:
	cppcheck --quiet --inline-suppr --enable=warning,performance,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem -Iengine -Ibot engine bot

clean:
	rm -rf build build-asan build-fuzz build-cov prbot

# ---- fuzzing: tests/fuzz/README.md -----------------------------------------
# Every tests/fuzz/fuzz_NAME.c is a libFuzzer target (its seeds in
# tests/fuzz/corpus/NAME/); adding a file is all it takes. `make fuzz` builds
# them with clang against an instrumented copy of the library in build-fuzz
# (coverage + ASan + UBSan; the SIMD kernel files only optimised: the
# harnesses run the scalar kernels) and runs each for FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TOTAL_SECONDS ?=
FUZZ_BUILD   ?= build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=gnu11 -O1 -g -pthread -fno-strict-aliasing -Wall -Wno-unused-parameter $(PKG_CFLAGS)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(ENGINE_SRC) $(BOT_SRC))

fuzz-build: $(FUZZ_BIN)

fuzz:
	bash tests/setup.sh --fuzz >/dev/null
	$(MAKE) fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TOTAL_SECONDS=$(FUZZ_TOTAL_SECONDS) bash tests/fuzz/run.sh

$(FUZZ_BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FLAGS_avx2) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FLAGS_avx512) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libprbot.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(wildcard tests/*.h) $(FUZZ_BUILD)/libprbot.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -Itests -Iengine -Ibot -o $@ $< $(FUZZ_BUILD)/libprbot.a $(LDLIBS)

$(FUZZ_BUILD)/obj/bot/prompt.o: $(wildcard prompts/*.txt)
-include $(FUZZ_LIB_OBJ:.o=.d)

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)

# prompts/*.txt are embedded into prompt.o with .incbin
$(BUILD)/bot/prompt.o: $(wildcard prompts/*.txt)
