/**
 * Three-step codecs in the style of compact-encoding: `preencode` measures, `encode` writes into
 * one exactly-sized buffer, `decode` reads from a cursor. Decoders check every length against the
 * bytes left and throw a PROTOCOL error instead of reading past the end.
 */
import { ErrorCode, TeleportError } from "../errors.js";

export interface State {
  start: number;
  end: number;
  buffer: Buffer;
}

export interface Codec<T> {
  preencode(state: State, value: T): void;
  encode(state: State, value: T): void;
  decode(state: State): T;
}

export function createState(buffer?: Buffer): State {
  return { start: 0, end: buffer?.length ?? 0, buffer: buffer ?? EMPTY };
}

const EMPTY = Buffer.alloc(0);

function need(state: State, bytes: number): void {
  if (state.end - state.start < bytes) {
    throw new TeleportError(ErrorCode.PROTOCOL, "message truncated");
  }
}

export const uint8: Codec<number> = {
  preencode(state) {
    state.end += 1;
  },
  encode(state, value) {
    state.buffer[state.start++] = value;
  },
  decode(state) {
    need(state, 1);
    return state.buffer[state.start++] as number;
  },
};

export const uint16: Codec<number> = {
  preencode(state) {
    state.end += 2;
  },
  encode(state, value) {
    state.buffer.writeUInt16LE(value, state.start);
    state.start += 2;
  },
  decode(state) {
    need(state, 2);
    const value = state.buffer.readUInt16LE(state.start);
    state.start += 2;
    return value;
  },
};

export const uint32: Codec<number> = {
  preencode(state) {
    state.end += 4;
  },
  encode(state, value) {
    state.buffer.writeUInt32LE(value, state.start);
    state.start += 4;
  },
  decode(state) {
    need(state, 4);
    const value = state.buffer.readUInt32LE(state.start);
    state.start += 4;
    return value;
  },
};

/** An unsigned 64-bit integer restricted to JavaScript's safe range (enough for 8 PiB files). */
export const uint64: Codec<number> = {
  preencode(state) {
    state.end += 8;
  },
  encode(state, value) {
    state.buffer.writeUInt32LE(value % 0x1_0000_0000, state.start);
    state.buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), state.start + 4);
    state.start += 8;
  },
  decode(state) {
    need(state, 8);
    const low = state.buffer.readUInt32LE(state.start);
    const high = state.buffer.readUInt32LE(state.start + 4);
    state.start += 8;
    if (high > 0x1f_ffff) throw new TeleportError(ErrorCode.PROTOCOL, "integer out of range");
    return high * 0x1_0000_0000 + low;
  },
};

export const float64: Codec<number> = {
  preencode(state) {
    state.end += 8;
  },
  encode(state, value) {
    state.buffer.writeDoubleLE(value, state.start);
    state.start += 8;
  },
  decode(state) {
    need(state, 8);
    const value = state.buffer.readDoubleLE(state.start);
    state.start += 8;
    if (!Number.isFinite(value)) throw new TeleportError(ErrorCode.PROTOCOL, "number out of range");
    return value;
  },
};

/** Fixed-length bytes; the decoded buffer is a view into the frame (no copy). */
export function fixedBytes(length: number): Codec<Buffer> {
  return {
    preencode(state) {
      state.end += length;
    },
    encode(state, value) {
      if (value.length !== length) throw new RangeError(`expected ${length} bytes, got ${value.length}`);
      value.copy(state.buffer, state.start);
      state.start += length;
    },
    decode(state) {
      need(state, length);
      const value = state.buffer.subarray(state.start, state.start + length);
      state.start += length;
      return value;
    },
  };
}

/** Bytes prefixed with a u32 length, capped at `maxLength` on both ends. */
export function bytes(maxLength: number): Codec<Buffer> {
  return {
    preencode(state, value) {
      state.end += 4 + value.length;
    },
    encode(state, value) {
      if (value.length > maxLength) throw new RangeError(`byte string over ${maxLength} bytes`);
      state.buffer.writeUInt32LE(value.length, state.start);
      value.copy(state.buffer, state.start + 4);
      state.start += 4 + value.length;
    },
    decode(state) {
      const length = uint32.decode(state);
      if (length > maxLength)
        throw new TeleportError(ErrorCode.PROTOCOL, `byte string over ${maxLength} bytes`);
      need(state, length);
      const value = state.buffer.subarray(state.start, state.start + length);
      state.start += length;
      return value;
    },
  };
}

/** UTF-8 text prefixed with a u16 byte length; invalid UTF-8 is refused, not replaced. */
export function utf8(maxBytes: number): Codec<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  return {
    preencode(state, value) {
      state.end += 2 + Buffer.byteLength(value);
    },
    encode(state, value) {
      const written = state.buffer.write(value, state.start + 2, "utf8");
      if (written > maxBytes) throw new RangeError(`text over ${maxBytes} bytes`);
      state.buffer.writeUInt16LE(written, state.start);
      state.start += 2 + written;
    },
    decode(state) {
      const length = uint16.decode(state);
      if (length > maxBytes) throw new TeleportError(ErrorCode.PROTOCOL, `text over ${maxBytes} bytes`);
      need(state, length);
      let value: string;
      try {
        value = decoder.decode(state.buffer.subarray(state.start, state.start + length));
      } catch {
        throw new TeleportError(ErrorCode.PROTOCOL, "text is not valid UTF-8");
      }
      state.start += length;
      return value;
    },
  };
}

/** A list prefixed with a u16 count, capped at `maxItems`. */
export function array<T>(item: Codec<T>, maxItems: number): Codec<T[]> {
  return {
    preencode(state, values) {
      state.end += 2;
      for (const value of values) item.preencode(state, value);
    },
    encode(state, values) {
      if (values.length > maxItems) throw new RangeError(`list over ${maxItems} items`);
      uint16.encode(state, values.length);
      for (const value of values) item.encode(state, value);
    },
    decode(state) {
      const count = uint16.decode(state);
      if (count > maxItems) throw new TeleportError(ErrorCode.PROTOCOL, `list over ${maxItems} items`);
      const values: T[] = [];
      for (let i = 0; i < count; i++) values.push(item.decode(state));
      return values;
    },
  };
}

/**
 * A field added to the end of a message by a later version: absent (undefined) when an older
 * peer's message ends before it. Only a struct's last fields may be optional.
 */
export function trailing<T>(codec: Codec<T>): Codec<T | undefined> {
  return {
    preencode(state, value) {
      if (value !== undefined) codec.preencode(state, value);
    },
    encode(state, value) {
      if (value !== undefined) codec.encode(state, value);
    },
    decode(state) {
      return state.start === state.end ? undefined : codec.decode(state);
    },
  };
}

/**
 * The rest of the message, as a view into the frame (no copy): bulk data, a struct's last field.
 * Its length is what the frame says.
 */
export const rest: Codec<Buffer> = {
  preencode(state, value) {
    state.end += value.length;
  },
  encode(state, value) {
    value.copy(state.buffer, state.start);
    state.start += value.length;
  },
  decode(state) {
    const value = state.buffer.subarray(state.start, state.end);
    state.start = state.end;
    return value;
  },
};

/** Builds a codec for a record from an ordered list of field codecs. */
export function struct<T extends object>(fields: { [K in keyof T]: Codec<T[K]> }): Codec<T> {
  const entries = Object.entries(fields) as [keyof T, Codec<unknown>][];
  return {
    preencode(state, value) {
      for (const [key, codec] of entries) codec.preencode(state, value[key]);
    },
    encode(state, value) {
      for (const [key, codec] of entries) codec.encode(state, value[key]);
    },
    decode(state) {
      const value = {} as T;
      for (const [key, codec] of entries) value[key] = codec.decode(state) as T[keyof T];
      return value;
    },
  };
}

/** Measures and encodes `value` into a buffer with `headroom` bytes reserved in front. */
export function encodeWithHeadroom<T>(codec: Codec<T>, value: T, headroom: number): Buffer {
  const state = createState();
  state.end = headroom;
  codec.preencode(state, value);
  state.buffer = Buffer.allocUnsafe(state.end);
  state.start = headroom;
  codec.encode(state, value);
  return state.buffer;
}

/** Decodes a whole message: trailing bytes are allowed (fields added by newer peers). */
export function decodeMessage<T>(codec: Codec<T>, body: Buffer): T {
  return codec.decode(createState(body));
}
