#!/bin/sh
# test_install.sh - `make install` / `make uninstall` and the build's library
# flags: installs the already built programs (BIN, and the BUILD dir beside
# it) under a temporary PREFIX and under DESTDIR, checks the tree and that the
# installed ocrkd runs, that uninstall removes exactly what install put there;
# that NAME_CFLAGS / NAME_LIBS given by hand replace pkg-config's (as under a
# module system, pkg-config disabled), that CC=mpicc adds no MPI flags of its
# own, and compiles an HDF5 and an MPI object with only hand-given flags.
. "$(dirname "$0")/lib.sh"
ROOT=$PWD
# bin -> build, bin-inst -> build-inst (the Makefile's pairing)
BUILD=${OCRKD_BUILD:-$(dirname "$BIN")/$(basename "$BIN" | sed 's/^bin/build/')}
unset MAKEFLAGS MFLAGS MAKELEVEL
mk() { nice -n 19 make --no-print-directory -C "$ROOT" BUILD="$BUILD" BIN="$BIN" "$@"; }

# ---- install into PREFIX ----
P=$TMP/p
expect_code 0 "make install PREFIX=$P" -- mk install PREFIX="$P"
for p in ocrkd ocrkd-synth ocrkd-pack; do
  if [ -x "$P/bin/$p" ]; then pass "bin/$p installed, executable"; else fail "bin/$p missing"; fi
done
count_same() { # what, source dir, name pattern, installed dir
  n_src=$(cd "$ROOT" && find "$2" -type f -name "$3" ! -name '.*' ! -name '*~' | wc -l)
  n_dst=$(find "$4" -type f | wc -l)
  if [ "$n_src" -gt 0 ] && [ "$n_src" -eq "$n_dst" ]; then pass "$1: $n_dst files"; else
    fail "$1: $n_dst installed, $n_src in the source"; fi
}
count_same "share/ocrkd/conf" conf '*.yaml' "$P/share/ocrkd/conf"
count_same "share/ocrkd/jobs" jobs '*' "$P/share/ocrkd/jobs"
count_same "share/ocrkd/data-tools" data-tools '*.py' "$P/share/ocrkd/data-tools"
if [ -x "$P/share/ocrkd/jobs/slurm/distill.sbatch" ] && [ ! -x "$P/share/ocrkd/conf/demo-distill.yaml" ]
then pass "job scripts keep their exec bit, configs are 0644"; else fail "installed modes"; fi
if [ -f "$P/share/doc/ocrkd/README.md" ] && [ -f "$P/share/doc/ocrkd/config.md" ]; then
  pass "share/doc/ocrkd has README.md and doc/*.md"; else fail "share/doc/ocrkd"; fi
expect_code 0 "installed ocrkd --version runs" -- "$P/bin/ocrkd" --version
expect_grep "^ocrkd [0-9]" "$TMP/out" "installed --version prints the version"

# ---- uninstall: exactly what install put there ----
echo keep >"$P/bin/other-tool"; mkdir -p "$P/share/other" && echo keep >"$P/share/other/f"
expect_code 0 "make uninstall PREFIX=$P" -- mk uninstall PREFIX="$P"
left=$(cd "$P" && find . -type f | sort | tr '\n' ' ')
if [ "$left" = "./bin/other-tool ./share/other/f " ]; then pass "uninstall leaves only others' files"
else fail "uninstall left: $left"; fi
if [ ! -e "$P/share/ocrkd" ] && [ ! -e "$P/share/doc/ocrkd" ]; then
  pass "uninstall removes share/ocrkd and share/doc/ocrkd"; else fail "ocrkd dirs left"; fi

# ---- DESTDIR staging ----
expect_code 0 "make install DESTDIR= PREFIX=/opt/ocrkd" -- mk install DESTDIR="$TMP/stage" PREFIX=/opt/ocrkd
if [ -x "$TMP/stage/opt/ocrkd/bin/ocrkd" ] && [ -f "$TMP/stage/opt/ocrkd/share/ocrkd/jobs/signals.sh" ]
then pass "DESTDIR prefixes every installed path"; else fail "DESTDIR install"; fi
expect_code 0 "make uninstall DESTDIR=" -- mk uninstall DESTDIR="$TMP/stage" PREFIX=/opt/ocrkd
if [ -z "$(find "$TMP/stage" -type f)" ]; then pass "DESTDIR uninstall"; else fail "DESTDIR uninstall"; fi

# ---- library flags by hand, pkg-config unavailable ----
# make -n -B into an empty BUILD prints every compile and link line.
dry() { PKG_CONFIG=false nice -n 19 make --no-print-directory -C "$ROOT" -n -B \
  BUILD="$TMP/b" BIN="$TMP/bb" "$@" all >"$TMP/dry" 2>&1; }
dry CC=mpicc OPENBLAS_CFLAGS=-I/opt/ob/include OPENBLAS_LIBS="-L/opt/ob/lib -lopenblas" \
  HDF5_CFLAGS=-I/opt/h5/include HDF5_LIBS="-L/opt/h5/lib -lhdf5" \
  YAML_CFLAGS=-I/opt/yaml/include YAML_LIBS="-L/opt/yaml/lib -lyaml" \
  PNG_LIBS=-lpng16 FREETYPE_CFLAGS=-I/opt/ft/include FREETYPE_LIBS=-lfreetype
cc_lines=$(grep -c '^mpicc .* -c ' "$TMP/dry")
h5_lines=$(grep '^mpicc .* -c ' "$TMP/dry" | grep -c -- '-I/opt/h5/include -I/opt/yaml/include')
if [ "$cc_lines" -gt 10 ] && [ "$cc_lines" -eq "$h5_lines" ]; then
  pass "every compile line has the hand-given HDF5/YAML flags ($cc_lines lines)"
else fail "hand-given CFLAGS: $h5_lines of $cc_lines compile lines"; sed 's/^/    /' "$TMP/dry" | head; fi
expect_grep '^mpicc .*-o [^ ]*/ocrkd .*-L/opt/ob/lib -lopenblas -L/opt/h5/lib -lhdf5 -L/opt/yaml/lib -lyaml -lpng16' \
  "$TMP/dry" "the link line has the hand-given LIBS"
expect_grep '^mpicc .*-I/opt/ft/include .*synth' "$TMP/dry" "FREETYPE_CFLAGS reach synth.c"
if grep -qE 'openmpi|-lmpi' "$TMP/dry"; then fail "CC=mpicc: MPI flags added"; else
  pass "CC=mpicc: no MPI flags of ours (the wrapper brings them)"; fi
dry CC=cc MPI_CFLAGS=-I/opt/mpich/include MPI_LIBS="-L/opt/mpich/lib -lmpi"
expect_grep '^cc .*-I/opt/mpich/include.* -c ' "$TMP/dry" "CC=cc takes MPI_CFLAGS"
expect_grep '^cc .*-L/opt/mpich/lib -lmpi' "$TMP/dry" "CC=cc takes MPI_LIBS"
dry CC=cc
expect_grep '^cc .* -lmpi -lopenblas -lhdf5 -lyaml -lpng -ljpeg .*-lpthread -lm' "$TMP/dry" \
  "no pkg-config and no flags: plain -l fallbacks"

# A real compile of an object that needs MPI, HDF5 and libyaml headers, with
# pkg-config disabled and the flags given by hand (what a module system gives).
if command -v pkg-config >/dev/null && pkg-config --exists hdf5 openblas; then
  obj=$TMP/b/src/io/checkpoint.o; obj2=$TMP/b/src/train/dist.o
  expect_code 0 "compile with hand-given flags, pkg-config disabled" -- env PKG_CONFIG=false \
    nice -n 19 make --no-print-directory -C "$ROOT" BUILD="$TMP/b" BIN="$TMP/bb" CC=mpicc \
    HDF5_CFLAGS="$(pkg-config --cflags hdf5)" OPENBLAS_CFLAGS="$(pkg-config --cflags openblas)" \
    PNG_CFLAGS="$(pkg-config --cflags libpng)" "$obj" "$obj2"
  if [ -s "$obj" ] && [ -s "$obj2" ]; then pass "objects built"; else fail "no $obj $obj2"; fi
fi
e2e_end
