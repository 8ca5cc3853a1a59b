/**
 * `--include`/`--exclude` rules as they travel: in MANIFEST (Feature.FILTERS) and in UPLOAD, in
 * the order given, for the side that walks to apply (src/filter). Kept apart from messages.ts,
 * whose codecs use them.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { type Codec, struct, uint8, utf8 } from "./codec.js";
import { MAX_PATTERN_BYTES } from "./limits.js";

export const FilterKind = { INCLUDE: 1, EXCLUDE: 2 } as const;
export type FilterKind = (typeof FilterKind)[keyof typeof FilterKind];

/** One `--include` or `--exclude` pattern (src/filter reads it), in the order given. */
export interface FilterRule {
  kind: FilterKind;
  pattern: string;
}
const filterKindCodec: Codec<FilterKind> = {
  preencode: uint8.preencode,
  encode: uint8.encode,
  decode(state) {
    const kind = uint8.decode(state);
    if (kind !== FilterKind.INCLUDE && kind !== FilterKind.EXCLUDE)
      throw new TeleportError(ErrorCode.PROTOCOL, `unknown filter kind ${kind}`);
    return kind;
  },
};
export const filterRuleCodec: Codec<FilterRule> = struct<FilterRule>({
  kind: filterKindCodec,
  pattern: utf8(MAX_PATTERN_BYTES),
});
