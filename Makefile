# ocrkd - knowledge distillation for OCR recognizers, as an MPI job.
#   make          build bin/ocrkd, bin/ocrkd-synth, bin/ocrkd-pack
#   make test     unit, MPI and end-to-end tests (closing line "N passed, N failed")
#   make demo     install deps, build, make data, train a teacher, distill, evaluate
#   make experiment  the same comparison at full length (~45-60 min on 2 cores, +10 with the unlabeled row)
#   make asan     unit tests under AddressSanitizer + UBSan
#   make deps     install the Debian packages (as root; prints the apt line otherwise)
#   make refs     regenerate tests/ref/*.h5 with PyTorch (python3-torch)

#   make install  PREFIX=/usr/local (and DESTDIR=) / make uninstall
#
# Each library's flags are NAME_CFLAGS / NAME_LIBS for NAME in MPI OPENBLAS
# HDF5 YAML PNG JPEG FREETYPE LMDB. By default they come from pkg-config under
# Debian's module names; set any of them by hand (command line or environment)
# where pkg-config does not know the library, e.g. under a module system:
#   make CC=mpicc HDF5_CFLAGS=-I$HDF5_ROOT/include HDF5_LIBS="-L$HDF5_ROOT/lib -lhdf5"
# When CC is an MPI compiler wrapper (mpicc of Open MPI, MPICH or Intel MPI,
# mpiicc, mpiicx, ...) it brings MPI's flags itself, so MPI_* default to empty.
PKG_CONFIG ?= pkg-config
# $(call pkg_flags,NAME,pkg-config module,LIBS when pkg-config does not know it)
define pkg_flags
ifeq ($$(origin $(1)_CFLAGS),undefined)
$(1)_CFLAGS := $$(shell $$(PKG_CONFIG) --cflags $(2) 2>/dev/null)
endif
ifeq ($$(origin $(1)_LIBS),undefined)
$(1)_LIBS := $$(or $$(shell $$(PKG_CONFIG) --libs $(2) 2>/dev/null),$(3))
endif
endef
ifneq ($(filter mpi%,$(notdir $(firstword $(CC)))),)
MPI_CFLAGS ?=
MPI_LIBS   ?=
endif
$(eval $(call pkg_flags,MPI,ompi-c,-lmpi))
$(eval $(call pkg_flags,OPENBLAS,openblas,-lopenblas))
$(eval $(call pkg_flags,HDF5,hdf5,-lhdf5))
$(eval $(call pkg_flags,YAML,yaml-0.1,-lyaml))
$(eval $(call pkg_flags,PNG,libpng,-lpng))
$(eval $(call pkg_flags,JPEG,libjpeg,-ljpeg))
$(eval $(call pkg_flags,FREETYPE,freetype2,-lfreetype))
$(eval $(call pkg_flags,LMDB,lmdb,-llmdb))
PKG_CFLAGS := $(strip $(MPI_CFLAGS) $(OPENBLAS_CFLAGS) $(HDF5_CFLAGS) $(YAML_CFLAGS) $(PNG_CFLAGS) $(JPEG_CFLAGS))
PKG_LIBS   := $(strip $(MPI_LIBS) $(OPENBLAS_LIBS) $(HDF5_LIBS) $(YAML_LIBS) $(PNG_LIBS) $(JPEG_LIBS))
FT_CFLAGS  := $(FREETYPE_CFLAGS)
FT_LIBS    := $(FREETYPE_LIBS)

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

.PHONY: all test tests demo experiment asan deps refs clean format bench bench-gemm bench-conv
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

$(BUILD)/data-tools/pack_lmdb.o: CFLAGS += $(LMDB_CFLAGS)

$(BIN)/ocrkd-pack: $(BUILD)/data-tools/pack.o $(BUILD)/data-tools/pack_lmdb.o \
                   $(BUILD)/data-tools/tool_util.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LMDB_LIBS) $(LDLIBS)

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

# ---- install: bin/, share/ocrkd/{conf,jobs,data-tools}, share/doc/ocrkd ----
PREFIX     ?= /usr/local
INSTALL    ?= install
INST_BIN   := $(DESTDIR)$(PREFIX)/bin
INST_SHARE := $(DESTDIR)$(PREFIX)/share/ocrkd
INST_DOC   := $(DESTDIR)$(PREFIX)/share/doc/ocrkd
INST_PROGS := ocrkd $(notdir $(TOOLS))
# under share/ocrkd with their paths kept; executables stay executable
INST_DATA  := $(sort $(wildcard conf/*.yaml data-tools/*.py) \
                $(shell find jobs -type f ! -name '.*' ! -name '*~' 2>/dev/null))
INST_DOCS  := $(wildcard README.md doc/*.md)

.PHONY: install uninstall
install: all
	$(INSTALL) -d $(INST_BIN) $(INST_DOC)
	$(INSTALL) -m 755 $(addprefix $(BIN)/,$(INST_PROGS)) $(INST_BIN)
	$(INSTALL) -m 644 $(INST_DOCS) $(INST_DOC)
	@set -e; for f in $(INST_DATA); do \
	  m=644; [ -x "$$f" ] && m=755; \
	  $(INSTALL) -d "$(INST_SHARE)/$${f%/*}"; \
	  $(INSTALL) -m $$m "$$f" "$(INST_SHARE)/$$f"; \
	done; echo "installed $(words $(INST_DATA)) files under $(INST_SHARE)"

# Removes exactly what install put there, then the directories of ocrkd's own
# that are left empty (never bin/ or share/ themselves).
uninstall:
	rm -f $(addprefix $(INST_BIN)/,$(INST_PROGS)) $(addprefix $(INST_DOC)/,$(notdir $(INST_DOCS)))
	rm -f $(addprefix $(INST_SHARE)/,$(INST_DATA))
	@if [ -d $(INST_SHARE) ]; then find $(INST_SHARE) -depth -type d -empty -delete; fi
	@rmdir $(INST_DOC) 2>/dev/null || true

refs:
	cd tests/ref && /usr/bin/python3 make_refs.py

bench: all
	@sh bench/run.sh

# gemm_f32 vs cblas_sgemm on ocrkd's GEMM shapes; how to run: bench/gemm_bench.c
bench-gemm: $(BIN)/bench_gemm

$(BIN)/bench_gemm: $(BUILD)/bench/gemm_bench.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# Winograd vs im2col on the ResNets' 3x3 convs; how to run: bench/conv_bench.c
bench-conv: $(BIN)/bench_conv

$(BIN)/bench_conv: $(BUILD)/bench/conv_bench.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

format:
	clang-format -i $$(find src include tests data-tools -name '*.[ch]')

clean:
	rm -rf build build-asan bin bin-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
