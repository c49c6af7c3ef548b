/* casefold.h - Unicode simple case folding for case-insensitive scoring
 * (src/util/casefold.c). Not a full Unicode library. */
#ifndef OCRKD_CASEFOLD_H
#define OCRKD_CASEFOLD_H

#include <stdint.h>

/* Simple case folding (Latin, Greek, Cyrillic, Armenian, fullwidth; other
 * code points unchanged): one code point to one code point. */
uint32_t unicode_fold(uint32_t cp);

#endif
