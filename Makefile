# ocrkd - knowledge distillation for OCR recognizers, as an MPI job.
#   make          build bin/ocrkd, bin/ocrkd-synth, bin/ocrkd-pack
#   make test     unit, MPI and end-to-end tests (closing line "N passed, N failed")
#   make demo     install deps, build, make data, train a teacher, distill, evaluate
#   make experiment  the same comparison at full length (~75 min on 2 cores)
#   make asan     unit tests under AddressSanitizer + UBSan
#   make deps     install the Debian packages (as root; prints the apt line otherwise)
#   make refs     regenerate tests/ref/*.h5 with PyTorch (python3-torch)

PKGS      := ompi-c openblas hdf5 yaml-0.1 libpng libjpeg
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
FT_CFLAGS  := $(shell pkg-config --cflags freetype2 2>/dev/null)
FT_LIBS    := $(shell pkg-config --libs freetype2 2>/dev/null)

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
# Let GCC vectorize elementwise loops that need a scalar tail (-O2's cost
# model refuses them); no -ffast-math, so results are unchanged.
CFLAGS  += -fvect-cost-model=dynamic -fno-math-errno
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude $(PKG_CFLAGS) -MMD -MP
LDLIBS  += $(PKG_LIBS) -lpthread -lm
BUILD   ?= build
BIN     ?= bin

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path 'src/cli/*'))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libocrkd.a

UNIT_SRC := $(sort $(wildcard tests/test_*.c))
MPI_SRC  := $(sort $(wildcard tests/mpi/test_*.c))
TEST_BIN := $(UNIT_SRC:tests/%.c=$(BIN)/tests/%) $(MPI_SRC:tests/mpi/%.c=$(BIN)/tests/mpi/%)
TOOLS    := $(if $(wildcard data-tools/synth.c),$(BIN)/ocrkd-synth) $(if $(wildcard data-tools/pack.c),$(BIN)/ocrkd-pack)

.PHONY: all test tests demo experiment asan deps refs clean format bench
# keep intermediate objects (no trailing "rm" after the test summary)
.SECONDARY:
all: $(BIN)/ocrkd $(TOOLS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/data-tools/synth.o: CFLAGS += $(FT_CFLAGS)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/ocrkd: $(CLI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDFLAGS) $(LDLIBS)

$(BIN)/ocrkd-synth: $(BUILD)/data-tools/synth.o $(BUILD)/data-tools/tool_util.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(FT_LIBS) $(LDLIBS)

$(BIN)/ocrkd-pack: $(BUILD)/data-tools/pack.o $(BUILD)/data-tools/tool_util.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BIN)/tests/%: $(BUILD)/tests/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

tests: all $(TEST_BIN)

# Unit tests, then MPI tests (mpirun -np 2), then end-to-end shell tests.
test: tests
	@BIN=$(BIN) sh tests/run.sh

asan:
	$(MAKE) BUILD=build-asan BIN=bin-asan \
	  OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" tests
	@ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  BIN=bin-asan ONLY=unit sh tests/run.sh

deps:
	@sh .ci/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@sh jobs/local/demo.sh

experiment: deps
	@$(MAKE) --no-print-directory all
	@sh jobs/local/experiment.sh

refs:
	cd tests/ref && /usr/bin/python3 make_refs.py

bench: all
	@sh bench/run.sh

format:
	clang-format -i $$(find src include tests data-tools -name '*.[ch]')

clean:
	rm -rf build build-asan bin bin-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
