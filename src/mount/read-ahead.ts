/**
 * Which reads of a mount are sequential, and how far ahead of them to fetch. Pure policy: the
 * caller says where each read falls and how large a window the path allows (the stream pool's
 * tuner sizes it to the bandwidth-delay product, as for a pull), and is told what to fetch.
 *
 * - Each file has a few cursors, so several readers of one file (or one reader alternating
 *   between two places) are each followed. A read starting where a cursor ended, or a little
 *   after it (a reader that skips a few pages), moves that cursor on; any other read starts a
 *   new cursor in place of the least recently used.
 * - A cursor's third read in a row makes it sequential: a random reader, whose reads almost
 *   never start where an earlier one ended, never fetches ahead.
 * - A sequential cursor keeps up to its window fetched past the reader, asking for more once
 *   less than half of it is left, so the fetches come as a few large batches rather than one
 *   chunk at a time. The window starts small (a short sequential read fetches little it does not
 *   use) and doubles with each batch asked, up to what the path allows: a slow start, like TCP's.
 */

export interface ReadAheadOptions {
  /** The first window of a sequential cursor. */
  initialWindowBytes: number;
  /** How far past a cursor's end a read still continues it. */
  skipBytes: number;
  /** Cursors followed per file. */
  cursorsPerFile: number;
  /** Files followed at once; the least recently read is forgotten first. */
  files: number;
}

export const DEFAULT_READ_AHEAD: ReadAheadOptions = {
  initialWindowBytes: 1 << 20,
  skipBytes: 128 << 10,
  cursorsPerFile: 4,
  files: 1024,
};

/** Bytes [from, to) of a file to fetch ahead of its reader. */
export interface FetchAhead {
  from: number;
  to: number;
}

/**
 * Reads in a row that make a cursor sequential. One is not enough: a random reader's read lands
 * just past one of a file's cursors now and then (1 in 2,000 for 4 KiB reads of a 1 GiB file);
 * two in a row almost never.
 */
const SEQUENTIAL_RUN = 2;

interface Cursor {
  /** Where the cursor's last read ended. */
  end: number;
  /** Reads in a row that continued it. */
  run: number;
  /** How far its fetches ahead reach. */
  fetchedTo: number;
  window: number;
}

export class ReadAhead {
  readonly #options: ReadAheadOptions;
  /** Cursors by file, the most recently read file last; each file's cursors most recent last. */
  readonly #files = new Map<number, Cursor[]>();

  constructor(options: ReadAheadOptions = DEFAULT_READ_AHEAD) {
    this.#options = options;
  }

  /**
   * A read of [offset, offset + length) of file `file`; returns what to fetch ahead of it, if
   * anything. `maxWindowBytes`: the most the path allows in flight for one reader.
   */
  read(file: number, offset: number, length: number, maxWindowBytes: number): FetchAhead | undefined {
    const cursors = this.#cursorsOf(file);
    const at = cursors.findIndex((c) => offset >= c.end && offset <= c.end + this.#options.skipBytes);
    const cursor = at < 0 ? this.#newCursor(cursors) : cursors.splice(at, 1)[0];
    if (cursor === undefined) return undefined;
    cursors.push(cursor);
    cursor.run = at < 0 ? 0 : cursor.run + 1;
    cursor.end = offset + length;
    if (cursor.run < SEQUENTIAL_RUN) return undefined;
    const ahead = cursor.fetchedTo - cursor.end;
    if (ahead >= cursor.window / 2) return undefined;
    const from = Math.max(cursor.fetchedTo, cursor.end);
    const to = cursor.end + cursor.window;
    cursor.fetchedTo = to;
    cursor.window = Math.max(cursor.window, Math.min(cursor.window * 2, maxWindowBytes));
    return { from, to };
  }

  /** Forgets a file (its listing was dropped, or it changed). */
  forget(file: number): void {
    this.#files.delete(file);
  }

  #cursorsOf(file: number): Cursor[] {
    let cursors = this.#files.get(file);
    if (cursors === undefined) {
      cursors = [];
      if (this.#files.size >= this.#options.files) {
        const oldest = this.#files.keys().next();
        if (oldest.done !== true) this.#files.delete(oldest.value);
      }
    } else {
      this.#files.delete(file);
    }
    this.#files.set(file, cursors);
    return cursors;
  }

  #newCursor(cursors: Cursor[]): Cursor {
    if (cursors.length >= this.#options.cursorsPerFile) cursors.shift();
    return { end: 0, run: 0, fetchedTo: 0, window: this.#options.initialWindowBytes };
  }
}
