/**
 * What each option's value must be: commander calls these as it parses, and a value they refuse
 * is a usage error naming what was expected. Shared by every command's definition.
 */
import { InvalidArgumentError } from "commander";
import { MAX_STREAMS } from "../client/pool/stream-tuner.js";
import { MAX_LEVEL, MIN_LEVEL } from "../compression/levels.js";
import { parseByteRate } from "./byte-rate.js";
import { parseDuration } from "./duration.js";

export function nonNegativeInteger(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed))
    throw new InvalidArgumentError("expected a whole number");
  return parsed;
}

/** Seconds, fractions allowed, above 0. */
export function seconds(value: string): number {
  const parsed = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(parsed > 0) || parsed > 86_400)
    throw new InvalidArgumentError("expected a number of seconds above 0, at most a day");
  return parsed;
}

export function positiveInteger(value: string): number {
  const parsed = nonNegativeInteger(value);
  if (parsed === 0) throw new InvalidArgumentError("expected a whole number above 0");
  return parsed;
}

export function streamCount(value: string): number {
  const parsed = positiveInteger(value);
  if (parsed > MAX_STREAMS) throw new InvalidArgumentError(`expected at most ${MAX_STREAMS} streams`);
  return parsed;
}

export function streamCounts(value: string): number[] {
  return value.split(",").map((part) => streamCount(part.trim()));
}

/** A parser for an option that takes one of `choices`. */
export function oneOf<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    const choice = choices.find((candidate) => candidate === value);
    if (choice === undefined) throw new InvalidArgumentError(`expected one of ${choices.join(", ")}`);
    return choice;
  };
}

export function compressLevel(value: string): number {
  const parsed = positiveInteger(value);
  if (parsed < MIN_LEVEL || parsed > MAX_LEVEL)
    throw new InvalidArgumentError(`expected a level from ${MIN_LEVEL} to ${MAX_LEVEL}`);
  return parsed;
}

export function port(value: string): number {
  const parsed = nonNegativeInteger(value);
  if (parsed > 65535) throw new InvalidArgumentError("expected a port from 0 to 65535");
  return parsed;
}

/** Node's timers hold at most 2^31-1 ms; a link meant to live longer is better left unexpiring. */
const MAX_EXPIRE_MS = 24 * 86_400_000;

export function duration(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms > MAX_EXPIRE_MS)
    throw new InvalidArgumentError("expected a duration such as 45s, 10m, 1h30m or 7d (at most 24d)");
  return ms;
}

export function byteRate(value: string): number {
  const bytesPerSecond = parseByteRate(value);
  if (bytesPerSecond === undefined)
    throw new InvalidArgumentError(
      "expected bytes per second such as 500k, 10M, 1.5MiB or 2MB (k, M, G: 1024-based)",
    );
  return bytesPerSecond;
}

/** A size such as 10G, 512MiB or 2GB (k, M, G: 1024-based unless spelled kB, MB, GB), as rates are. */
export function byteSize(value: string): number {
  const bytes = /\/s$/.test(value.trim()) ? undefined : parseByteRate(value);
  if (bytes === undefined)
    throw new InvalidArgumentError("expected a size such as 512M, 10G, 1.5GiB or 2GB (k, M, G: 1024-based)");
  return bytes;
}

/** A congestion control's name as the kernel spells them (TCP_CA_NAME_MAX is 16 with the NUL). */
export function congestionName(value: string): string {
  if (!/^[a-z0-9_]{1,15}$/.test(value))
    throw new InvalidArgumentError(
      "expected a congestion control's name, such as bbr, cubic, reno or system",
    );
  return value;
}

/** A relay's address, as `teleport relay` prints it: checked in full where it is used. */
export function relayAddress(value: string): string {
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):\d{1,5}$/.test(value))
    throw new InvalidArgumentError("expected HOST:PORT, as `teleport relay` prints it");
  return value;
}
