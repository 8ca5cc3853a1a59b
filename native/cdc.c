/*
 * The cut-point scan of content-defined chunking (FastCDC's gear hash), for a whole buffer in
 * one call: the JS loop costs about a nanosecond a byte and is most of what the host spends
 * cutting files, and one call per read, not per chunk, keeps the crossing into C rare. The rule
 * (sizes, masks and gear table) comes from src/chunking/chunker.ts, which also keeps the same
 * scan in JS as the portable path and the reference: both must cut at the same bytes.
 */
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#include "cdc.h"

/* The rule's layout, as chunker.ts packs it into an Int32Array. */
enum { RULE_MIN, RULE_AVG, RULE_MAX, RULE_MASK_HARD, RULE_MASK_EASY, RULE_GEAR, RULE_LENGTH = RULE_GEAR + 256 };

typedef struct {
  size_t min;
  size_t avg;
  size_t max;
  uint32_t mask_hard;
  uint32_t mask_easy;
  const uint32_t *gear;
} cdc_rule_t;

static napi_value usage(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/*
 * The length of the chunk at the start of `data`, or 0 when more bytes are needed to decide:
 * ContentDefinedChunker.nextChunkLength, bit for bit (its hash is an int32 wrapping as this
 * uint32 does). `hash * 2 + gear` compiles to one lea: the scan runs at a byte a cycle or so.
 */
static size_t next_chunk_length(const cdc_rule_t *rule, const uint8_t *data, size_t length, int eof) {
  if (length <= rule->min) return eof ? length : 0;
  size_t end = length < rule->max ? length : rule->max;
  size_t normal = end < rule->avg ? end : rule->avg;
  const uint32_t *gear = rule->gear;
  uint32_t hash = 0;
  size_t i = rule->min;
  for (; i < normal; i++) {
    hash = hash * 2 + gear[data[i]];
    if ((hash & rule->mask_hard) == 0) return i + 1;
  }
  for (; i < end; i++) {
    hash = hash * 2 + gear[data[i]];
    if ((hash & rule->mask_easy) == 0) return i + 1;
  }
  return end == rule->max || eof ? end : 0;
}

static int rule_arg(napi_env env, napi_value value, cdc_rule_t *rule) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_int32_array || length != RULE_LENGTH)
    return 0;
  const int32_t *words = data;
  if (words[RULE_MIN] <= 0 || words[RULE_MIN] >= words[RULE_AVG] || words[RULE_AVG] >= words[RULE_MAX]) return 0;
  rule->min = (size_t)words[RULE_MIN];
  rule->avg = (size_t)words[RULE_AVG];
  rule->max = (size_t)words[RULE_MAX];
  rule->mask_hard = (uint32_t)words[RULE_MASK_HARD];
  rule->mask_easy = (uint32_t)words[RULE_MASK_EASY];
  rule->gear = (const uint32_t *)(words + RULE_GEAR);
  return 1;
}

/*
 * cdcCuts(rule: Int32Array, data: Uint8Array, eof: boolean, lengths: Uint32Array): number.
 * Writes the lengths of the chunks at the start of `data`, one after another, into `lengths`
 * and returns how many: it stops where `lengths` is full or the rest of `data` needs more bytes
 * to decide (never at `eof`, where the last bytes always make a chunk).
 */
static napi_value cdc_cuts_js(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc = 4;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return usage(env, "too few arguments");
  cdc_rule_t rule;
  if (!rule_arg(env, argv[0], &rule)) return usage(env, "expected a chunking rule");
  napi_typedarray_type type;
  size_t length;
  void *bytes;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, NULL, NULL) != napi_ok ||
      type != napi_uint8_array)
    return usage(env, "expected a Uint8Array");
  bool eof;
  if (napi_get_value_bool(env, argv[2], &eof) != napi_ok) return usage(env, "expected a boolean");
  size_t capacity;
  void *out;
  if (napi_get_typedarray_info(env, argv[3], &type, &capacity, &out, NULL, NULL) != napi_ok ||
      type != napi_uint32_array)
    return usage(env, "expected a Uint32Array");
  const uint8_t *data = bytes;
  uint32_t *lengths = out;
  size_t count = 0;
  size_t at = 0;
  while (count < capacity && at < length) {
    size_t cut = next_chunk_length(&rule, data + at, length - at, eof);
    if (cut == 0) break;
    lengths[count++] = (uint32_t)cut;
    at += cut;
  }
  napi_value result;
  napi_create_uint32(env, (uint32_t)count, &result);
  return result;
}

void teleport_define_cdc(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"cdcCuts", NULL, cdc_cuts_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
