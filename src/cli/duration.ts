/**
 * Durations on the command line (`host --expire 90m`): one or more whole numbers each with a
 * unit, largest first, such as `45s`, `10m`, `1h30m` or `7d`. Nothing else is accepted, so a typo
 * is an error rather than a link that lives for some other time.
 */
const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 } as const;
const DURATION = /^(?:(\d{1,5})d)?(?:(\d{1,5})h)?(?:(\d{1,5})m)?(?:(\d{1,7})s)?$/;

/** Milliseconds, or undefined when `text` is not a duration this parser accepts (or is zero). */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (match === null || text === "") return undefined;
  const [, days, hours, minutes, seconds] = match;
  const ms =
    Number(days ?? 0) * UNIT_MS.d +
    Number(hours ?? 0) * UNIT_MS.h +
    Number(minutes ?? 0) * UNIT_MS.m +
    Number(seconds ?? 0) * UNIT_MS.s;
  return ms > 0 ? ms : undefined;
}
