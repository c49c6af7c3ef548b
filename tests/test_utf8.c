/* test_utf8.c - the one UTF-8 decoder (utf8_next), encoder (utf8_put) and
 * counter (utf8_count): every sequence length, round trips, and the invalid
 * forms (overlong, surrogate, past U+10FFFF, truncated, stray bytes). */
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/utf8.h"
#include "test.h"

static void test_lengths(void) {
    static const struct {
        const char *s;
        uint32_t cp;
        int len;
    } ok[] = {
        {"A", 'A', 1},          {"\x7f", 0x7F, 1},          {"\xc2\x80", 0x80, 2},
        {"\xc3\xa4", 0xE4, 2},  {"\xdf\xbf", 0x7FF, 2},     {"\xe0\xa0\x80", 0x800, 3},
        {"\xe2\x82\xac", 0x20AC, 3}, {"\xef\xbf\xbf", 0xFFFF, 3}, {"\xf0\x90\x80\x80", 0x10000, 4},
        {"\xf0\x9f\x98\x80", 0x1F600, 4}, {"\xf4\x8f\xbf\xbf", 0x10FFFF, 4},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        const char *p = ok[i].s;
        uint32_t cp = 0;
        int r = utf8_next(&p, &cp);
        CHECK(r == 1 && cp == ok[i].cp && p == ok[i].s + ok[i].len, "decode U+%04X (got %d U+%04X)",
              ok[i].cp, r, cp);
        char buf[5] = {0};
        int n = utf8_put(ok[i].cp, buf);
        CHECK(n == ok[i].len && !memcmp(buf, ok[i].s, (size_t)n), "encode U+%04X", ok[i].cp);
    }
}

static void test_invalid(void) {
    static const char *const bad[] = {
        "\x80",             /* stray continuation */
        "\xff",             /* never a lead byte */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf", /* overlong, 4 bytes */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xc3",             /* truncated at the NUL */
        "\xe2\x82",         /* truncated */
        "\xc3" "a",         /* continuation missing */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        const char *p = bad[i];
        uint32_t cp = 0;
        CHECK(utf8_next(&p, &cp) == -1 && p == bad[i], "invalid sequence %zu refused in place", i);
        CHECK(utf8_count(bad[i]) == -1, "utf8_count of invalid sequence %zu is -1", i);
    }
    const char *p = "";
    uint32_t cp;
    CHECK(utf8_next(&p, &cp) == 0, "end of string");
}

static void test_count(void) {
    CHECK(utf8_count("") == 0, "empty");
    CHECK(utf8_count("abc") == 3, "ASCII");
    CHECK(utf8_count("a\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80") == 4, "mixed lengths");
    CHECK(utf8_count("ab\xc3") == -1, "invalid tail");
    /* every code point of the planes round-trips (surrogates excepted) */
    int bad = 0;
    for (uint32_t c = 1; c <= 0x10FFFF; c += (c < 0x30000 ? 1 : 97)) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        char buf[5] = {0};
        buf[utf8_put(c, buf)] = 0;
        const char *q = buf;
        uint32_t got = 0;
        if (utf8_next(&q, &got) != 1 || got != c || *q) bad++;
    }
    CHECK(bad == 0, "round trips (%d wrong)", bad);
}

int main(void) {
    test_lengths();
    test_invalid();
    test_count();
    TEST_END();
}
