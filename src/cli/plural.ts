/** A count in words, for every summary line: `1 file`, `2 files`, `0 symlinks`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
