/* test_blas_core.c - the OpenBLAS kernel policy (blas_core_better): which
 * detections are replaced, by what, and that nothing else is touched. The
 * re-exec itself is exercised end to end (tests/e2e/test_train.sh). */
#include <string.h>

#include "ocrkd/blas_core.h"
#include "test.h"

static int is(const char *got, const char *want) {
    return want ? got && !strcmp(got, want) : got == NULL;
}

int main(void) {
    /* fallbacks older than the CPU: replaced by what the CPU supports */
    CHECK(is(blas_core_better("Prescott", 1, 1), "SkylakeX"), "Prescott on AVX-512 -> SkylakeX");
    CHECK(is(blas_core_better("Prescott", 0, 1), "Haswell"), "Prescott on AVX2 -> Haswell");
    CHECK(is(blas_core_better("Nehalem", 0, 1), "Haswell"), "Nehalem on AVX2 -> Haswell");
    CHECK(is(blas_core_better("Sandybridge", 1, 1), "SkylakeX"), "Sandybridge on AVX-512");
    CHECK(is(blas_core_better("CORE2", 0, 1), "Haswell"), "names compare case-insensitively");
    /* a CPU without AVX2 keeps its detection */
    CHECK(is(blas_core_better("Prescott", 0, 0), NULL), "Prescott without AVX2 kept");
    /* modern detections are never second-guessed */
    const char *modern[] = {"Haswell", "SkylakeX", "Cooperlake", "Zen", "SapphireRapids"};
    for (int i = 0; i < 5; i++)
        CHECK(is(blas_core_better(modern[i], 1, 1), NULL), "%s kept", modern[i]);
    CHECK(is(blas_core_better(NULL, 1, 1), NULL), "no name: nothing");
    TEST_END();
}
