// Ed25519 signature verification (RFC 8032), self-contained, for the vcompile bundle runner.
//
//   int ed25519_verify(const uint8_t sig[64], const uint8_t* msg, size_t len, const uint8_t pub[32]);
//
// Returns 1 when `sig` is a valid signature of `msg` under the public key `pub`, else 0.
// Written from RFC 8032 (sections 5.1.3, 5.1.4, 5.1.7) and FIPS 180-4; verification only,
// over public data, so it is not constant-time. The check is the cofactorless one that
// OpenSSL (and so Python's `cryptography`) makes: s < L, A decodes, and the encoding of
// [s]B - [k]A equals the 32 bytes R, with k = SHA-512(R || A || msg) mod L. Encodings of a
// coordinate y >= p (non-canonical) are refused for A, and can never equal R's bytes.
//
// Representation: a field element mod p = 2^255 - 19 is five 51-bit limbs (value =
// sum l[i] 2^(51 i)), products in unsigned __int128 (GCC and Clang, 64-bit targets); points
// are extended coordinates (X : Y : Z : T) with x = X/Z, y = Y/Z, x y = T/Z.
// Compiles as C99 or C++; everything is static, prefixed ed25519_/fe_/ge_/sha512_.
#ifndef VCOMPILE_ED25519_H
#define VCOMPILE_ED25519_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// ---- SHA-512 (FIPS 180-4) -------------------------------------------------------------
typedef struct {
  uint64_t h[8];
  uint8_t buf[128];
  size_t fill;     // bytes waiting in buf
  uint64_t total;  // bytes hashed so far (messages under 2^61 bytes)
} sha512_ctx;

// The first 64 bits of the fractional parts of the cube roots of the first 80 primes.
static const uint64_t sha512_k[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL};

static uint64_t sha512_rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static void sha512_block(uint64_t h[8], const uint8_t* p) {
  uint64_t w[80], v[8];
  for (int i = 0; i < 16; ++i) {
    w[i] = 0;
    for (int j = 0; j < 8; ++j) w[i] = w[i] << 8 | p[8 * i + j];  // big-endian words
  }
  for (int i = 16; i < 80; ++i) {
    uint64_t s0 = sha512_rotr(w[i - 15], 1) ^ sha512_rotr(w[i - 15], 8) ^ (w[i - 15] >> 7);
    uint64_t s1 = sha512_rotr(w[i - 2], 19) ^ sha512_rotr(w[i - 2], 61) ^ (w[i - 2] >> 6);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  for (int i = 0; i < 8; ++i) v[i] = h[i];
  for (int i = 0; i < 80; ++i) {  // v = a b c d e f g h
    uint64_t e = v[4], a = v[0];
    uint64_t t1 = v[7] + (sha512_rotr(e, 14) ^ sha512_rotr(e, 18) ^ sha512_rotr(e, 41)) +
                  ((e & v[5]) ^ (~e & v[6])) + sha512_k[i] + w[i];
    uint64_t t2 = (sha512_rotr(a, 28) ^ sha512_rotr(a, 34) ^ sha512_rotr(a, 39)) +
                  ((a & v[1]) ^ (a & v[2]) ^ (v[1] & v[2]));
    for (int j = 7; j > 0; --j) v[j] = v[j - 1];
    v[4] += t1;
    v[0] = t1 + t2;
  }
  for (int i = 0; i < 8; ++i) h[i] += v[i];
}

static void sha512_init(sha512_ctx* c) {
  // The first 64 bits of the fractional parts of the square roots of the first 8 primes.
  static const uint64_t iv[8] = {0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
                                 0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
                                 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
  memcpy(c->h, iv, sizeof iv);
  c->fill = 0;
  c->total = 0;
}

static void sha512_update(sha512_ctx* c, const uint8_t* p, size_t n) {
  c->total += n;
  while (n > 0) {
    size_t take = 128 - c->fill < n ? 128 - c->fill : n;
    memcpy(c->buf + c->fill, p, take);
    c->fill += take;
    p += take;
    n -= take;
    if (c->fill == 128) {
      sha512_block(c->h, c->buf);
      c->fill = 0;
    }
  }
}

static void sha512_final(sha512_ctx* c, uint8_t out[64]) {
  uint64_t bits = c->total * 8;
  uint8_t pad[256] = {0x80};  // 0x80, zeros, then the 128-bit big-endian bit length
  size_t n = (c->fill < 112 ? 128 : 256) - c->fill;
  for (int i = 0; i < 8; ++i) pad[n - 1 - i] = (uint8_t)(bits >> (8 * i));
  sha512_update(c, pad, n);
  for (int i = 0; i < 64; ++i) out[i] = (uint8_t)(c->h[i / 8] >> (56 - 8 * (i % 8)));
}

// ---- the field mod p = 2^255 - 19 -------------------------------------------------------
typedef uint64_t fe[5];
typedef unsigned __int128 fe_wide;
#define FE_MASK ((1ULL << 51) - 1)

static void fe_set(fe r, uint64_t v) {
  r[0] = v;
  r[1] = r[2] = r[3] = r[4] = 0;
}

static void fe_copy(fe r, const fe a) { memcpy(r, a, sizeof(fe)); }

// Brings every limb under 2^51 (plus a little in limb 0); 2^255 = 19 mod p folds the top.
static void fe_carry(fe r) {
  for (int i = 0; i < 4; ++i) {
    r[i + 1] += r[i] >> 51;
    r[i] &= FE_MASK;
  }
  r[0] += 19 * (r[4] >> 51);
  r[4] &= FE_MASK;
}

static void fe_add(fe r, const fe a, const fe b) {
  for (int i = 0; i < 5; ++i) r[i] = a[i] + b[i];
  fe_carry(r);
}

// a - b + 4p, so no limb goes negative (b's limbs are carried, under 2^52).
static void fe_sub(fe r, const fe a, const fe b) {
  r[0] = a[0] + ((FE_MASK - 18) << 2) - b[0];
  for (int i = 1; i < 5; ++i) r[i] = a[i] + (FE_MASK << 2) - b[i];
  fe_carry(r);
}

static void fe_mul(fe r, const fe a, const fe b) {
  // Schoolbook; a product term of weight 2^(51 (i + j)) with i + j >= 5 is 2^255 = 19 times
  // a term of weight 2^(51 (i + j - 5)).
  fe_wide t[5] = {0, 0, 0, 0, 0};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) {
      fe_wide m = (fe_wide)a[i] * b[j];
      if (i + j < 5) t[i + j] += m;
      else t[i + j - 5] += m * 19;
    }
  for (int i = 0; i < 4; ++i) {  // sums under 2^116; carry in 128 bits
    t[i + 1] += t[i] >> 51;
    t[i] &= FE_MASK;
  }
  t[0] += (t[4] >> 51) * 19;
  t[4] &= FE_MASK;
  t[1] += t[0] >> 51;
  t[0] &= FE_MASK;
  for (int i = 0; i < 5; ++i) r[i] = (uint64_t)t[i];
}

static void fe_sq(fe r, const fe a) { fe_mul(r, a, a); }

// a^e, e a little-endian 255-bit exponent.
static void fe_pow(fe r, const fe a, const uint8_t e[32]) {
  fe acc, base;
  fe_set(acc, 1);
  fe_copy(base, a);
  for (int bit = 254; bit >= 0; --bit) {
    fe_sq(acc, acc);
    if (e[bit / 8] >> (bit % 8) & 1) fe_mul(acc, acc, base);
  }
  fe_copy(r, acc);
}

// a^(2^k - c) for small c (1 <= c <= 256): p - 2 = 2^255 - 21, (p - 5) / 8 = 2^252 - 3, ...
static void fe_pow_2k_minus(fe r, const fe a, int k, int c) {
  uint8_t e[32] = {0};
  for (int bit = 0; bit < k; ++bit) e[bit / 8] |= (uint8_t)(1u << (bit % 8));
  e[0] = (uint8_t)(e[0] - (c - 1));  // the low byte is 0xff: no borrow
  fe_pow(r, a, e);
}

static void fe_invert(fe r, const fe a) { fe_pow_2k_minus(r, a, 255, 21); }  // a^(p-2)

// The canonical 32 little-endian bytes (the value reduced to [0, p)).
static void fe_tobytes(uint8_t out[32], const fe a) {
  fe t;
  fe_copy(t, a);
  fe_carry(t);
  while (t[0] >> 51) fe_carry(t);  // now every limb is under 2^51: t < 2^255
  if (t[0] >= FE_MASK - 18 && t[1] == FE_MASK && t[2] == FE_MASK && t[3] == FE_MASK &&
      t[4] == FE_MASK) {  // p <= t < 2^255
    t[0] -= FE_MASK - 18;
    t[1] = t[2] = t[3] = t[4] = 0;
  }
  memset(out, 0, 32);
  for (int bit = 0; bit < 255; ++bit)
    out[bit / 8] |= (uint8_t)((t[bit / 51] >> (bit % 51) & 1) << (bit % 8));
}

// The low 255 bits of 32 little-endian bytes (the top bit is ignored); not reduced.
static void fe_frombytes(fe r, const uint8_t in[32]) {
  fe_set(r, 0);
  for (int bit = 0; bit < 255; ++bit) r[bit / 51] |= (uint64_t)(in[bit / 8] >> (bit % 8) & 1) << (bit % 51);
}

static int fe_equal(const fe a, const fe b) {
  uint8_t x[32], y[32];
  fe_tobytes(x, a);
  fe_tobytes(y, b);
  return memcmp(x, y, 32) == 0;
}

static int fe_is_zero(const fe a) {
  fe z;
  fe_set(z, 0);
  return fe_equal(a, z);
}

static int fe_is_odd(const fe a) {  // the "sign" of x in an encoding
  uint8_t x[32];
  fe_tobytes(x, a);
  return x[0] & 1;
}

static void fe_neg(fe r, const fe a) {
  fe z;
  fe_set(z, 0);
  fe_sub(r, z, a);
}

// ---- the curve -x^2 + y^2 = 1 + d x^2 y^2 --------------------------------------------------
typedef struct {
  fe X, Y, Z, T;
} ge;

typedef struct {
  fe d, d2, sqrt_m1;  // d = -121665/121666, 2d, sqrt(-1) = 2^((p-1)/4)
  ge base;            // B: y = 4/5, x even
} ge_consts;

static void ge_identity(ge* p) {
  fe_set(p->X, 0);
  fe_set(p->Y, 1);
  fe_set(p->Z, 1);
  fe_set(p->T, 0);
}

// RFC 8032 5.1.4 addition; complete (it also doubles, and adds the identity).
static void ge_add(ge* r, const ge* p, const ge* q, const ge_consts* k) {
  fe a, b, c, d, e, f, g, h, t;
  fe_sub(a, p->Y, p->X);
  fe_sub(t, q->Y, q->X);
  fe_mul(a, a, t);
  fe_add(b, p->Y, p->X);
  fe_add(t, q->Y, q->X);
  fe_mul(b, b, t);
  fe_mul(c, p->T, q->T);
  fe_mul(c, c, k->d2);
  fe_mul(d, p->Z, q->Z);
  fe_add(d, d, d);
  fe_sub(e, b, a);
  fe_sub(f, d, c);
  fe_add(g, d, c);
  fe_add(h, b, a);
  fe_mul(r->X, e, f);
  fe_mul(r->Y, g, h);
  fe_mul(r->T, e, h);
  fe_mul(r->Z, f, g);
}

// RFC 8032 5.1.4 doubling.
static void ge_double(ge* r, const ge* p) {
  fe a, b, c, e, f, g, h;
  fe_sq(a, p->X);
  fe_sq(b, p->Y);
  fe_sq(c, p->Z);
  fe_add(c, c, c);
  fe_add(h, a, b);
  fe_add(e, p->X, p->Y);
  fe_sq(e, e);
  fe_sub(e, h, e);
  fe_sub(g, a, b);
  fe_add(f, c, g);
  fe_mul(r->X, e, f);
  fe_mul(r->Y, g, h);
  fe_mul(r->T, e, h);
  fe_mul(r->Z, f, g);
}

static void ge_encode(uint8_t out[32], const ge* p) {
  fe zi, x, y;
  fe_invert(zi, p->Z);
  fe_mul(x, p->X, zi);
  fe_mul(y, p->Y, zi);
  fe_tobytes(out, y);
  out[31] |= (uint8_t)(fe_is_odd(x) << 7);
}

// RFC 8032 5.1.3: 1 and the point, or 0 for an encoding that is not one (y >= p included).
static int ge_decode(ge* r, const uint8_t in[32], const ge_consts* k) {
  uint8_t canon[32];
  int sign = in[31] >> 7;
  fe y, u, v, v3, x, t, one;
  fe_frombytes(y, in);
  fe_tobytes(canon, y);
  canon[31] |= (uint8_t)(sign << 7);
  if (memcmp(canon, in, 32) != 0) return 0;  // y >= p
  fe_set(one, 1);
  fe_sq(u, y);
  fe_mul(v, u, k->d);
  fe_sub(u, u, one);  // u = y^2 - 1
  fe_add(v, v, one);  // v = d y^2 + 1
  fe_sq(v3, v);
  fe_mul(v3, v3, v);                 // v^3
  fe_sq(t, v3);
  fe_mul(t, t, v);
  fe_mul(t, t, u);                   // u v^7
  fe_pow_2k_minus(t, t, 252, 3);     // (u v^7)^((p-5)/8)
  fe_mul(x, u, v3);
  fe_mul(x, x, t);                   // candidate root x = u v^3 (u v^7)^((p-5)/8)
  fe_sq(t, x);
  fe_mul(t, t, v);                   // v x^2
  if (!fe_equal(t, u)) {
    fe_neg(u, u);
    if (!fe_equal(t, u)) return 0;   // u/v is not a square: no such point
    fe_mul(x, x, k->sqrt_m1);
  }
  if (fe_is_zero(x) && sign) return 0;
  if (fe_is_odd(x) != sign) fe_neg(x, x);
  fe_copy(r->X, x);
  fe_copy(r->Y, y);
  fe_set(r->Z, 1);
  fe_mul(r->T, x, y);
  return 1;
}

static void ge_consts_init(ge_consts* k) {
  fe a, b;
  uint8_t enc[32];
  fe_set(a, 121666);
  fe_invert(a, a);
  fe_set(b, 121665);
  fe_mul(a, a, b);
  fe_neg(k->d, a);
  fe_add(k->d2, k->d, k->d);
  fe_set(a, 2);
  fe_pow_2k_minus(k->sqrt_m1, a, 253, 5);  // 2^((p-1)/4) = 2^(2^253 - 5)
  fe_set(a, 5);
  fe_invert(a, a);
  fe_set(b, 4);
  fe_mul(a, a, b);  // y = 4/5
  fe_tobytes(enc, a);
  ge_decode(&k->base, enc, k);
}

// ---- scalars mod L = 2^252 + 27742317777372353535851937790883648493 ------------------------
static const uint8_t ed25519_L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                      0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};

// Compares little-endian numbers of n bytes: -1, 0 or 1.
static int scalar_cmp(const uint8_t* a, const uint8_t* b, int n) {
  for (int i = n - 1; i >= 0; --i)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

// r = x mod L for a 64-byte little-endian x: binary long division, one bit at a time.
static void scalar_reduce(uint8_t r[32], const uint8_t x[64]) {
  uint8_t acc[33] = {0};  // acc < 2L < 2^254 between steps; one spare byte for the shift
  uint8_t L[33] = {0};
  memcpy(L, ed25519_L, 32);
  for (int bit = 511; bit >= 0; --bit) {
    int carry = x[bit / 8] >> (bit % 8) & 1;
    for (int i = 0; i < 33; ++i) {  // acc = 2 acc + bit
      int v = acc[i] << 1 | carry;
      acc[i] = (uint8_t)v;
      carry = v >> 8;
    }
    if (scalar_cmp(acc, L, 33) >= 0) {  // acc -= L
      int borrow = 0;
      for (int i = 0; i < 33; ++i) {
        int v = acc[i] - L[i] - borrow;
        borrow = v < 0;
        acc[i] = (uint8_t)(v + (borrow << 8));
      }
    }
  }
  memcpy(r, acc, 32);
}

// ---- verification (RFC 8032 5.1.7) ----------------------------------------------------------
static int ed25519_verify(const uint8_t sig[64], const uint8_t* msg, size_t len, const uint8_t pub[32]) {
  ge_consts k;
  ge a, p;
  uint8_t h[64], s_k[32], check[32];
  const uint8_t* s = sig + 32;
  sha512_ctx c;
  if (scalar_cmp(s, ed25519_L, 32) >= 0) return 0;  // s must be below L
  ge_consts_init(&k);
  if (!ge_decode(&a, pub, &k)) return 0;
  sha512_init(&c);
  sha512_update(&c, sig, 32);  // R
  sha512_update(&c, pub, 32);  // A
  sha512_update(&c, msg, len);
  sha512_final(&c, h);
  scalar_reduce(s_k, h);  // k
  fe_neg(a.X, a.X);       // -A
  fe_neg(a.T, a.T);
  ge_identity(&p);        // p = [s]B + [k](-A), both scalars' bits from the top
  for (int bit = 255; bit >= 0; --bit) {
    ge_double(&p, &p);
    if (s[bit / 8] >> (bit % 8) & 1) ge_add(&p, &p, &k.base, &k);
    if (s_k[bit / 8] >> (bit % 8) & 1) ge_add(&p, &p, &a, &k);
  }
  ge_encode(check, &p);
  return memcmp(check, sig, 32) == 0;
}

#endif  // VCOMPILE_ED25519_H
