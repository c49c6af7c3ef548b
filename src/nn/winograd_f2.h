/* winograd_f2.h - winograd.c's F(2x2, 3x3) transforms at WL float lanes:
 * included by winograd.c once with WL 4 (SSE2, the baseline ISA) and once
 * with WL 8 under an AVX2 target pragma. Defines split_row_vWL,
 * input_tiles_vWL, output_tiles_vWL, grad_tiles_vWL and weight_grads_vWL
 * (the pool_for ranges of winograd.c's runs); the 8-lane rows finish their
 * last tiles with the 4-lane functions.
 *
 * Every lane does the same IEEE additions and halvings in the same order
 * whatever WL (no FMA: -std=c11 does not contract), so both widths give
 * the same bits; WL only sets how many tiles an instruction transforms (at
 * 4 lanes the transforms were 19 % of the demo teacher's training step).
 * Expects from winograd.c: TilePass, OutPass, WeightGradPass, HALF_ROW,
 * vec4.h and conv_bias_act_run. Private to winograd.c. */

#define WN(name) WN_(name, WL)
#define WN_(name, l) WN__(name, l)
#define WN__(name, l) name##_v##l

typedef float WN(vf) __attribute__((vector_size(4 * WL)));
typedef int WN(vi) __attribute__((vector_size(4 * WL)));
#define VF WN(vf)
#define VI WN(vi)
#if WL == 4
#define EVEN_LANES {0, 2, 4, 6}
#define ODD_LANES {1, 3, 5, 7}
#define LOW_PAIRS {0, 4, 1, 5}
#define HIGH_PAIRS {2, 6, 3, 7}
#define SHIFT_IN {3, 4, 5, 6}  /* (a[3], b[0..2]) */
#define SHIFT_OUT {1, 2, 3, 4} /* (a[1..3], b[0]) */
#elif WL == 8
#define EVEN_LANES {0, 2, 4, 6, 8, 10, 12, 14}
#define ODD_LANES {1, 3, 5, 7, 9, 11, 13, 15}
#define LOW_PAIRS {0, 8, 1, 9, 2, 10, 3, 11}
#define HIGH_PAIRS {4, 12, 5, 13, 6, 14, 7, 15}
#define SHIFT_IN {7, 8, 9, 10, 11, 12, 13, 14}
#define SHIFT_OUT {1, 2, 3, 4, 5, 6, 7, 8}
#else
#error "winograd_f2.h: WL must be 4 or 8"
#endif

static inline VF WN(ld)(const float *p) {
    VF v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void WN(st)(float *p, VF v) {
    memcpy(p, &v, sizeof v);
}
/* the first n (1..WL) floats; lanes past n are 0 */
static inline __attribute__((always_inline)) VF WN(ld_n)(const float *p, int n) {
    VF v = {0};
    memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}
static inline __attribute__((always_inline)) void WN(st_n)(float *p, VF v, int n) {
    memcpy(p, &v, (size_t)n * sizeof(float));
}

/* The padded row p[k] = x[k - pad] (0 outside [0, W)) split into its even
 * and odd elements: ev[j] = p[2j], od[j] = p[2j + 1], j in [0, n + WL) and
 * on to the next multiple of WL (the transforms read up to a vector past
 * n); a NULL x is a row of padding. pad is 1 (input tiles) or 0 (dout
 * tiles). Every store is a whole vector at a multiple of WL, as the
 * transforms load them: a load that spans two stores (an odd offset, or a
 * vector over scalar tail stores) cannot take its data from the store
 * buffer and waits for both to reach the cache - at 8 lanes those stalls
 * took half of input_tiles' time. */
static void WN(split_row)(const float *x, int W, int pad, int n, float *ev, float *od) {
    const int len = n + WL;
    const VF zero = {0};
    VF carry = zero; /* pad 1: the last odd x of the block before, p[2j0] */
    for (int i = 0, j = 0; j < len; i += 2 * WL, j += WL) {
        VF a = zero, b = zero;
        if (x && i + 2 * WL <= W) {
            a = WN(ld)(x + i), b = WN(ld)(x + i + WL);
        } else if (x && i < W) {
            float t[2 * WL] = {0};
            memcpy(t, x + i, (size_t)(W - i) * sizeof(float));
            a = WN(ld)(t), b = WN(ld)(t + WL);
        }
        const VF even = __builtin_shuffle(a, b, (VI)EVEN_LANES),
                 odd = __builtin_shuffle(a, b, (VI)ODD_LANES);
        if (pad) { /* p[2j] = x[2j - 1], p[2j + 1] = x[2j] */
            WN(st)(ev + j, __builtin_shuffle(carry, odd, (VI)SHIFT_IN));
            WN(st)(od + j, even);
            carry = odd;
        } else {
            WN(st)(ev + j, even);
            WN(st)(od + j, odd);
        }
    }
}

/* (B^T d) B along the width for tiles [tx, TW) of one height-transformed
 * row (r[2tx] = e[tx], r[2tx + 1] = o[tx]): planes v0 .. v0 + 3 plane.
 * tx is a multiple of WL; e and o hold whole vectors past TW. The
 * neighbours e[tx + 1], o[tx + 1] come from the vector and the next one
 * (SHIFT_OUT), not from a load at tx + 1, which would span two stores. */
static inline void WN(width_bt)(const float *e, const float *o, float *v0, size_t plane, int tx,
                                int TW) {
    float *v1 = v0 + plane, *v2 = v1 + plane, *v3 = v2 + plane;
    for (; tx + WL <= TW; tx += WL) {
        VF a = WN(ld)(e + tx), bb = WN(ld)(o + tx);
        VF cc = __builtin_shuffle(a, WN(ld)(e + tx + WL), (VI)SHIFT_OUT),
           d = __builtin_shuffle(bb, WN(ld)(o + tx + WL), (VI)SHIFT_OUT);
        WN(st)(v0 + tx, a - cc);
        WN(st)(v1 + tx, bb + cc);
        WN(st)(v2 + tx, cc - bb);
        WN(st)(v3 + tx, bb - d);
    }
#if WL > 4
    width_bt_v4(e, o, v0, plane, tx, TW);
#else
    for (; tx < TW; tx++) {
        v0[tx] = e[tx] - e[tx + 1];
        v1[tx] = o[tx] + e[tx + 1];
        v2[tx] = e[tx + 1] - o[tx];
        v3[tx] = o[tx] - o[tx + 1];
    }
#endif
}

static void WN(input_tiles)(void *arg, size_t c0, size_t c1) {
    const TilePass *p = arg;
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = p->N;
    float evb[4][HALF_ROW], odb[4][HALF_ROW], te[4][HALF_ROW], to[4][HALF_ROW];
    for (size_t c = c0; c < c1; c++)
        for (int b = 0; b < p->nb; b++) {
            const float *x = p->x + ((size_t)b * p->C + c) * H * W;
            float *v = p->V + c * 16 * p->N + (size_t)b * TH * TW;
            /* the split rows of tile row ty: padded rows 2ty-1 .. 2ty+2; the
             * last two are the next tile row's first two, so each row is
             * split once (the pointers rotate) */
            float *ev[4] = {evb[0], evb[1], evb[2], evb[3]};
            float *od[4] = {odb[0], odb[1], odb[2], odb[3]};
            for (int ty = 0; ty < TH; ty++) {
                if (ty > 0)
                    for (int i = 0; i < 2; i++) {
                        float *e = ev[i], *o = od[i];
                        ev[i] = ev[i + 2], od[i] = od[i + 2];
                        ev[i + 2] = e, od[i + 2] = o;
                    }
                for (int i = ty > 0 ? 2 : 0; i < 4; i++) {
                    int y = 2 * ty - 1 + i;
                    WN(split_row)(y >= 0 && y < H ? x + (size_t)y * W : NULL, W, 1, TW + 1,
                                  ev[i], od[i]);
                }
                for (int k = 0; k < TW + 1; k += WL) { /* B^T d: along the height */
                    VF e0 = WN(ld)(ev[0] + k), e1 = WN(ld)(ev[1] + k), e2 = WN(ld)(ev[2] + k),
                       e3 = WN(ld)(ev[3] + k);
                    VF o0 = WN(ld)(od[0] + k), o1 = WN(ld)(od[1] + k), o2 = WN(ld)(od[2] + k),
                       o3 = WN(ld)(od[3] + k);
                    WN(st)(te[0] + k, e0 - e2), WN(st)(to[0] + k, o0 - o2);
                    WN(st)(te[1] + k, e1 + e2), WN(st)(to[1] + k, o1 + o2);
                    WN(st)(te[2] + k, e2 - e1), WN(st)(to[2] + k, o2 - o1);
                    WN(st)(te[3] + k, e1 - e3), WN(st)(to[3] + k, o1 - o3);
                }
                float *vt = v + (size_t)ty * TW;
                for (int i = 0; i < 4; i++) /* (B^T d) B: along the width */
                    WN(width_bt)(te[i], to[i], vt + (size_t)(4 * i) * plane, plane, 0, TW);
            }
        }
}

/* (A^T M) A of n (1..WL) tiles whose 16 planes start at m, plane apart
 * (lane = tile): the two output rows' even (a) and odd (b) columns. A
 * column j of the planes at a time, so that few vectors stay live. */
static inline __attribute__((always_inline)) void WN(output_transform)(const float *m,
                                                                       size_t plane, int n,
                                                                       VF *a0, VF *b0, VF *a1,
                                                                       VF *b1) {
    VF t0[4], t1[4]; /* A^T M: along the height */
    for (int j = 0; j < 4; j++) {
        const float *c = m + j * plane;
        VF e0, e1, e2, e3;
        if (n == WL) {
            e0 = WN(ld)(c), e1 = WN(ld)(c + 4 * plane), e2 = WN(ld)(c + 8 * plane);
            e3 = WN(ld)(c + 12 * plane);
        } else {
            e0 = WN(ld_n)(c, n), e1 = WN(ld_n)(c + 4 * plane, n);
            e2 = WN(ld_n)(c + 8 * plane, n), e3 = WN(ld_n)(c + 12 * plane, n);
        }
        t0[j] = e0 + e1 + e2;
        t1[j] = e1 - e2 - e3;
    }
    *a0 = t0[0] + t0[1] + t0[2]; /* (A^T M) A: along the width */
    *b0 = t0[1] - t0[2] - t0[3];
    *a1 = t1[0] + t1[1] + t1[2];
    *b1 = t1[1] - t1[2] - t1[3];
}

/* out[2l] = a[l], out[2l + 1] = b[l] for the first 2n of 2 WL */
static inline __attribute__((always_inline)) void WN(store_pairs)(float *out, VF a, VF b, int n) {
    VF lo = __builtin_shuffle(a, b, (VI)LOW_PAIRS), hi = __builtin_shuffle(a, b, (VI)HIGH_PAIRS);
    if (n == WL) {
        WN(st)(out, lo);
        WN(st)(out + WL, hi);
    } else {
        float tmp[2 * WL];
        WN(st)(tmp, lo);
        WN(st)(tmp + WL, hi);
        memcpy(out, tmp, (size_t)(2 * n) * sizeof(float));
    }
}

/* the two output rows out0, out1 of tiles [tx, TW) of one tile row */
static inline void WN(output_row)(const float *mt, size_t plane, int tx, int TW, float *out0,
                                  float *out1) {
    VF a0, b0, a1, b1;
    for (; tx + WL <= TW; tx += WL) {
        WN(output_transform)(mt + tx, plane, WL, &a0, &b0, &a1, &b1);
        WN(store_pairs)(out0 + 2 * tx, a0, b0, WL);
        WN(store_pairs)(out1 + 2 * tx, a1, b1, WL);
    }
#if WL > 4
    output_row_v4(mt, plane, tx, TW, out0, out1);
#else
    if (tx < TW) {
        const int n = TW - tx;
        WN(output_transform)(mt + tx, plane, n, &a0, &b0, &a1, &b1);
        WN(store_pairs)(out0 + 2 * tx, a0, b0, n);
        WN(store_pairs)(out1 + 2 * tx, a1, b1, n);
    }
#endif
}

static void WN(output_tiles)(void *arg, size_t o0, size_t o1) {
    const OutPass *p = arg;
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = p->N;
    float out[2][WINO_MAX_W + 8];
    for (size_t oc = o0; oc < o1; oc++)
        for (int b = 0; b < p->nb; b++) {
            const float *m = p->M + oc * 16 * p->N + (size_t)b * TH * TW;
            const size_t at = ((size_t)b * p->OC + oc) * H * W;
            for (int ty = 0; ty < TH; ty++) {
                WN(output_row)(m + (size_t)ty * TW, plane, 0, TW, out[0], out[1]);
                for (int i = 0; i < 2 && 2 * ty + i < H; i++) {
                    const size_t r = (size_t)(2 * ty + i) * W;
                    put_row(p, oc, at + r, out[i]);
                }
            }
        }
}

/* A dY A^T of tiles [tx, TW) of one tile row from its split dout rows
 * (e0, o0), (e1, o1): planes dt .. dt + 15 plane */
static inline void WN(grad_row)(const float *e0, const float *o0, const float *e1,
                                const float *o1, float *dt, size_t plane, int tx, int TW) {
    for (; tx < TW; tx += WL) {
#if WL > 4
        if (tx + WL > TW) {
            grad_row_v4(e0, o0, e1, o1, dt, plane, tx, TW);
            return;
        }
#endif
        const int n = TW - tx < WL ? TW - tx : WL;
        VF a = WN(ld)(e0 + tx), bb = WN(ld)(o0 + tx), cc = WN(ld)(e1 + tx), dd = WN(ld)(o1 + tx);
        /* A dY: rows y0, y0 + y1, y0 - y1, -y1; then each row (p, q) ->
         * (p, p + q, p - q, -q) */
        VF r[4][2] = {{a, bb}, {a + cc, bb + dd}, {a - cc, bb - dd}, {-cc, -dd}};
        for (int i = 0; i < 4; i++) {
            float *o = dt + (size_t)(4 * i) * plane + tx;
            VF q[4] = {r[i][0], r[i][0] + r[i][1], r[i][0] - r[i][1], -r[i][1]};
            for (int j = 0; j < 4; j++)
                if (n == WL) WN(st)(o + j * plane, q[j]);
                else WN(st_n)(o + j * plane, q[j], n);
        }
    }
}

/* D (16, OC, N) = A dY A^T of dout tiles (nb, OC, H, W); 0 beyond the map */
static void WN(grad_tiles)(void *arg, size_t o0, size_t o1) {
    const TilePass *p = arg; /* x = dout, C = OC, V = D */
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = p->N;
    float ev[2][HALF_ROW], od[2][HALF_ROW];
    for (size_t oc = o0; oc < o1; oc++)
        for (int b = 0; b < p->nb; b++) {
            const float *dy = p->x + ((size_t)b * p->C + oc) * H * W;
            float *d = p->V + oc * 16 * p->N + (size_t)b * TH * TW;
            for (int ty = 0; ty < TH; ty++) {
                for (int i = 0; i < 2; i++) {
                    int y = 2 * ty + i;
                    WN(split_row)(y < H ? dy + (size_t)y * W : NULL, W, 0, TW, ev[i], od[i]);
                }
                WN(grad_row)(ev[0], od[0], ev[1], od[1], d + (size_t)ty * TW, plane, 0, TW);
            }
        }
}

/* dw (OC, C, 3, 3) += G^T dU G of dU (16, OC, C), WL filters a lane */
static void WN(weight_grads)(void *arg, size_t r0, size_t r1) {
    const WeightGradPass *p = arg;
    const float h = 0.5f;
    for (size_t r = r0; r < r1; r += WL) {
        const int n = r1 - r < WL ? (int)(r1 - r) : WL;
        VF e[16];
        for (int k = 0; k < 16; k++)
            e[k] = n == WL ? WN(ld)(p->dU + k * p->plane + r)
                           : WN(ld_n)(p->dU + k * p->plane + r, n);
        VF s[3][4]; /* G^T dU: along the height */
        for (int j = 0; j < 4; j++) {
            s[0][j] = e[j] + h * (e[4 + j] + e[8 + j]);
            s[1][j] = h * (e[4 + j] - e[8 + j]);
            s[2][j] = h * (e[4 + j] + e[8 + j]) + e[12 + j];
        }
        VF g[9];
        for (int i = 0; i < 3; i++) { /* (G^T dU) G: along the width */
            g[3 * i] = s[i][0] + h * (s[i][1] + s[i][2]);
            g[3 * i + 1] = h * (s[i][1] - s[i][2]);
            g[3 * i + 2] = h * (s[i][1] + s[i][2]) + s[i][3];
        }
        for (int l = 0; l < n; l++) {
            float *o = p->dw + (r + (size_t)l) * 9;
            for (int i = 0; i < 9; i++)
                o[i] += g[i][l];
        }
    }
}

#undef EVEN_LANES
#undef ODD_LANES
#undef LOW_PAIRS
#undef HIGH_PAIRS
#undef SHIFT_IN
#undef SHIFT_OUT
#undef VF
#undef VI
#undef WN__
#undef WN_
#undef WN
