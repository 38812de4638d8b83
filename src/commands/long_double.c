/* INCRBYFLOAT arithmetic in C's long double, exactly as Redis computes and
 * prints it (string2ld, then "%.17Lf" with trailing zeros removed): Rust has
 * no 80-bit float, and the printed digits are part of the reply. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LONG_DOUBLE_CHARS (5 * 1024)

static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[MAX_LONG_DOUBLE_CHARS];
    char *end;
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    long double v = strtold(buf, &end);
    if (isspace((unsigned char)buf[0]) || *end != '\0' || (size_t)(end - buf) != len ||
        (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) ||
        errno == EINVAL || isnan(v))
        return 0;
    *out = v;
    return 1;
}

/* Prints `v` as Redis's ld2string(LD_STR_HUMAN) does: "%.17Lf" with the
 * trailing zeros (and a bare '.') removed, "-0" as "0". Returns the
 * length, or -4 if it does not fit. */
static long format_human(long double v, char *out, size_t out_len) {
    int l = snprintf(out, out_len, "%.17Lf", v);
    if (l < 0 || (size_t)l + 1 > out_len) return -4;
    if (strchr(out, '.') != NULL) {
        char *p = out + l - 1;
        while (*p == '0') { p--; l--; }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') { out[0] = '0'; l = 1; }
    return l;
}

/* Adds `incr` to `cur` (NULL: 0) and prints the result into `out`.
 * Returns the length, -1 if cur is not a float, -2 if incr is not,
 * -3 if the result is NaN or infinite, -4 if it does not fit. */
long percore_incrbyfloat(const char *cur, size_t cur_len, const char *incr, size_t incr_len,
                         char *out, size_t out_len) {
    long double a = 0, b;
    if (cur && !parse_ld(cur, cur_len, &a)) return -1;
    if (!parse_ld(incr, incr_len, &b)) return -2;
    long double v = a + b;
    if (isnan(v) || isinf(v)) return -3;
    return format_human(v, out, out_len);
}

/* A double widened to long double and printed in the human form
 * (addReplyHumanLongDouble, GEOPOS's coordinates). */
long percore_human_double(double v, char *out, size_t out_len) {
    return format_human((long double)v, out, out_len);
}
