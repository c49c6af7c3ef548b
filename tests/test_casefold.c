/* test_casefold.c - unicode_fold (Latin, Greek, Cyrillic and the rest of its
 * table) and case-insensitive scoring through eval_add on non-ASCII text. */
#include "ocrkd/evaluate.h"
#include "test.h"

static void test_pairs(void) {
    static const uint32_t pairs[][2] = {
        {'A', 'a'},       {'Z', 'z'},       {'a', 'a'},         {'0', '0'},       {'_', '_'},
        {0x00C4, 0x00E4}, {0x00D7, 0x00D7}, {0x00DE, 0x00FE},   {0x00DF, 0x00DF}, {0x00B5, 0x03BC},
        {0x0100, 0x0101}, {0x0101, 0x0101}, {0x0130, 0x0069},   {0x0141, 0x0142}, {0x0178, 0x00FF},
        {0x017D, 0x017E}, {0x017F, 's'},    {0x018F, 0x0259},   {0x01C4, 0x01C6}, {0x01C5, 0x01C6},
        {0x01CD, 0x01CE}, {0x0218, 0x0219}, {0x0391, 0x03B1},   {0x03A3, 0x03C3}, {0x03C2, 0x03C3},
        {0x03A9, 0x03C9}, {0x0386, 0x03AC}, {0x038F, 0x03CE},   {0x03C9, 0x03C9}, {0x0401, 0x0451},
        {0x0410, 0x0430}, {0x042F, 0x044F}, {0x0430, 0x0430},   {0x0462, 0x0463}, {0x04C1, 0x04C2},
        {0x04D0, 0x04D1}, {0x0531, 0x0561}, {0x1E9E, 0x00DF},   {0x1EA0, 0x1EA1}, {0x1F08, 0x1F00},
        {0x1F59, 0x1F51}, {0x1F5A, 0x1F5A}, {0x1FBC, 0x1FB3},   {0x2126, 0x03C9}, {0x212A, 'k'},
        {0xFF21, 0xFF41}, {0x4E2D, 0x4E2D}, {0x1F600, 0x1F600},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        uint32_t got = unicode_fold(pairs[i][0]);
        if (got != pairs[i][1]) {
            if (bad++ < 5)
                fprintf(stderr, "  fold U+%04X = U+%04X, want U+%04X\n", pairs[i][0], got,
                        pairs[i][1]);
        }
    }
    CHECK(bad == 0, "known case pairs fold (%d wrong)", bad);
}

/* Folding twice changes nothing: no row maps onto a code point another row
 * maps again (which also catches rows out of order for the binary search). */
static void test_idempotent(void) {
    int bad = 0;
    for (uint32_t cp = 0; cp < 0x20000; cp++)
        if (unicode_fold(unicode_fold(cp)) != unicode_fold(cp)) bad++;
    CHECK(bad == 0, "fold is idempotent below U+20000 (%d code points not)", bad);
}

static void test_scoring(void) {
    EvalCounts c = {0};
    /* "ΑΘΗΝΑ Москва Ölçü" vs lower case: equal only when case-insensitive */
    const char *upper = "\xce\x91\xce\x98\xce\x97\xce\x9d\xce\x91 \xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a"
                        "\xd0\x92\xd0\x90 \xc3\x96L\xc3\x87\xc3\x9c";
    const char *lower = "\xce\xb1\xce\xb8\xce\xb7\xce\xbd\xce\xb1 \xd0\xbc\xd0\xbe\xd1\x81\xd0\xba"
                        "\xd0\xb2\xd0\xb0 \xc3\xb6l\xc3\xa7\xc3\xbc";
    CHECK(eval_add(&c, upper, lower, 1) == 1, "Greek/Cyrillic/Latin-1 match case-insensitively");
    CHECK(eval_add(&c, upper, lower, 0) == 0, "and differ case-sensitively");
    EvalResult r = eval_result(&c);
    CHECK(r.n == 2 && r.word_acc == 0.5, "word_acc 0.5 over the two (%g)", r.word_acc);
    EvalCounts d = {0};
    /* punctuation and spaces are kept: "a-b" vs "ab" is one edit either way */
    CHECK(eval_add(&d, "A-B", "ab", 1) == 0 && d.v[EVAL_EDITS] == 1, "nothing dropped");
}

int main(void) {
    test_pairs();
    test_idempotent();
    test_scoring();
    TEST_END();
}
