/**
 * Rates on the command line (`pull --bwlimit 10M`): a number, fractions allowed, and a unit
 * of bytes per second, with an optional `/s`. Units follow rsync and rclone: `k`, `M`, `G`
 * (and `KiB`, `MiB`, `GiB`) are powers of 1024, `kB`, `MB`, `GB` powers of 1000, `B` is bytes.
 * A bare number is refused, since rsync reads one as KiB and a guess either way surprises someone.
 */
const POWERS: Record<string, number> = { k: 1, m: 2, g: 3 };
/** A lower-case `b` (bits to some) is refused rather than guessed at. */
const RATE = /^(\d+(?:\.\d+)?)\s*(?:([kKmMgG])(iB|B)?|(B))(?:\/s)?$/;

/** Bytes per second, or undefined when `text` is not a rate this parser accepts (or is zero). */
export function parseByteRate(text: string): number | undefined {
  const match = RATE.exec(text.trim());
  if (match === null) return undefined;
  const [, amount, prefix, suffix] = match;
  const power = POWERS[(prefix ?? "").toLowerCase()] ?? 0;
  const perUnit = (suffix === "B" ? 1000 : 1024) ** power;
  const bytes = Math.round(Number(amount) * perUnit);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}
