/*
 * The struct layouts callers were compiled with (include/cpool.h,
 * "Versions and struct layouts"): cpool_config_init, cpool_open and
 * cpool_stats are macros passing sizeof of the caller's struct to the
 * *_sized functions here, which read and write only that many bytes and
 * convert to and from this library's own layout, for config.c and pool.c.
 * The plain symbols take the 0.1 layouts, for programs compiled before
 * the macros existed.
 */
#include "internal.h"

#include <stdalign.h>
#include <stdio.h>
#include <string.h>

/* The functions below define the plain symbols, not the header's macros. */
#undef cpool_config_init
#undef cpool_open
#undef cpool_stats

/* 0 if a caller's struct of size bytes can be read or written as one of
 * min..full bytes, or larger with nothing set beyond full (read, a config
 * only: tail non-NULL); else CPOOL_EINVAL with why in msg. */
static int size_ok(const char *what, size_t size, size_t min, size_t full,
                   size_t align, const void *tail, char *msg, size_t len) {
  if (size < min || size % align != 0) {
    snprintf(msg, len,
             "%s size %zu is not a layout of it (at least %zu, a multiple "
             "of %zu; this library's is %zu)",
             what, size, min, align, full);
    return CPOOL_EINVAL;
  }
  if (tail != NULL && size > full) {
    const unsigned char *b = tail;
    for (size_t i = 0; i < size - full; i++)
      if (b[i] != 0) {
        snprintf(msg, len,
                 "%s of %zu bytes sets a field at byte %zu that this "
                 "library (%zu bytes, cpool %s) does not know",
                 what, size, full + i, full, cpool_version_string());
        return CPOOL_EINVAL;
      }
  }
  return 0;
}

static size_t min_size(size_t a, size_t b) {
  return a < b ? a : b;
}

int cpool_config_init_sized(cpool_config *cfg, size_t size) {
  char msg[160];
  cpool_config full;

  if (cfg == NULL ||
      size_ok("cpool_config", size, CPOOL_CONFIG_SIZE_0_1, sizeof full,
              alignof(cpool_config), NULL, msg, sizeof msg) != 0)
    return CPOOL_EINVAL;
  cpool__config_defaults(&full);
  memset(cfg, 0, size);
  memcpy(cfg, &full, min_size(size, sizeof full));
  return 0;
}

int cpool_open_sized(cpool_t **out, const cpool_config *cfg, size_t cfg_size,
                     cpool_error_info *err) {
  char msg[200];
  cpool_config full;

  if (out == NULL || cfg == NULL) /* cpool__open says which */
    return cpool__open(out, cfg, err);
  if (size_ok("cpool_config", cfg_size, CPOOL_CONFIG_SIZE_0_1, sizeof full,
              alignof(cpool_config), (const char *)cfg + sizeof full, msg,
              sizeof msg) != 0) {
    *out = NULL;
    if (err != NULL)
      memset(err, 0, sizeof *err);
    cpool__error_set(err, CPOOL_EINVAL, CPOOL_STEP_NONE, 0, NULL,
                     "invalid configuration: %s", msg);
    return CPOOL_EINVAL;
  }
  /* The fields beyond the caller's struct are 0: their defaults. */
  memset(&full, 0, sizeof full);
  memcpy(&full, cfg, min_size(cfg_size, sizeof full));
  return cpool__open(out, &full, err);
}

int cpool_stats_sized(cpool_t *p, cpool_stats_t *out, size_t size) {
  char msg[160];
  cpool_stats_t full;
  int rc;

  if (p == NULL || out == NULL ||
      size_ok("cpool_stats_t", size, CPOOL_STATS_SIZE_0_1, sizeof full,
              alignof(cpool_stats_t), NULL, msg, sizeof msg) != 0)
    return CPOOL_EINVAL;
  if ((rc = cpool__stats(p, &full)) != 0)
    return rc;
  memset(out, 0, size);
  memcpy(out, &full, min_size(size, sizeof full));
  return 0;
}

/* The 0.1.0 entry points: the 0.1 layouts. */
void cpool_config_init(cpool_config *cfg) {
  (void)cpool_config_init_sized(cfg, CPOOL_CONFIG_SIZE_0_1);
}

int cpool_open(cpool_t **out, const cpool_config *cfg, cpool_error_info *err) {
  return cpool_open_sized(out, cfg, CPOOL_CONFIG_SIZE_0_1, err);
}

int cpool_stats(cpool_t *p, cpool_stats_t *out) {
  return cpool_stats_sized(p, out, CPOOL_STATS_SIZE_0_1);
}
