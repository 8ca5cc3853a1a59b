/**
 * Join codes: `7-crossover-clockwork`, a nameplate (which mailbox slot to meet at, public) and
 * words from the PGP word list (the password, secret). The whole code is SPAKE2's password, so a
 * code read to the wrong nameplate fails like a wrong word.
 */
import { randomInt } from "node:crypto";
import { ErrorCode, TeleportError } from "../errors.js";
import { EVEN_WORDS, ODD_WORDS } from "./pgp-words.js";

/** Two words: 16 bits, and one guess per code (docs/decisions.md, "Code words"). */
export const CODE_WORDS = 2;
/** Nameplates a mailbox hands out are 1..MAX_NAMEPLATE; short numbers are quicker to read out. */
export const MAX_NAMEPLATE = 999_999;

export interface JoinCode {
  nameplate: number;
  words: readonly string[];
}

const ODD_INDEX = new Map(ODD_WORDS.map((word, index) => [word, index]));
const EVEN_INDEX = new Map(EVEN_WORDS.map((word, index) => [word, index]));

/** Fresh words for `nameplate`: odd list first, then even, alternating (as magic-wormhole does). */
export function newJoinCode(nameplate: number): JoinCode {
  const words: string[] = [];
  for (let i = 0; i < CODE_WORDS; i += 1) {
    const list = i % 2 === 0 ? ODD_WORDS : EVEN_WORDS;
    words.push(list[randomInt(list.length)] ?? "");
  }
  return { nameplate, words };
}

export function formatJoinCode(code: JoinCode): string {
  return [String(code.nameplate), ...code.words].join("-");
}

/**
 * A code as typed: case and surrounding spaces do not matter; the number must be a nameplate and
 * each word in its list, so a typo is caught here rather than burning the offer.
 */
export function parseJoinCode(text: string): JoinCode {
  const parts = text.trim().toLowerCase().split("-");
  const [number, ...words] = parts;
  const nameplate = Number(number);
  if (number === undefined || !/^[1-9]\d{0,5}$/.test(number) || nameplate > MAX_NAMEPLATE)
    throw badCode("it should start with the number `teleport send` printed (as in 7-crossover-clockwork)");
  if (words.length !== CODE_WORDS)
    throw badCode(`it should have ${CODE_WORDS} words after the number (as in 7-crossover-clockwork)`);
  words.forEach((word, i) => {
    const index = i % 2 === 0 ? ODD_INDEX : EVEN_INDEX;
    if (!index.has(word)) throw badCode(`"${word}" is not a word such codes use: check its spelling`);
  });
  return { nameplate, words };
}

/** SPAKE2's password: the code as printed, nameplate included. */
export function codePassword(code: JoinCode): Buffer {
  return Buffer.from(formatJoinCode(code));
}

function badCode(why: string): TeleportError {
  return new TeleportError(ErrorCode.USAGE, `not a join code: ${why}`);
}
