/**
 * A delta script: how a chunk is rebuilt from blocks of an old window and literal bytes. It is a
 * list of ops, each `literal` bytes taken from the literal stream, then `count` consecutive
 * blocks of the window from `block` on (count may be 0). On the wire it is OP_BYTES per op.
 */

/** Three u32 LE: literal, block, count. */
export const OP_BYTES = 12;

export interface DeltaOp {
  literal: number;
  block: number;
  count: number;
}

/** Ops as they cross the wire. */
export function encodeOps(ops: readonly DeltaOp[]): Buffer {
  const encoded = Buffer.allocUnsafe(ops.length * OP_BYTES);
  ops.forEach((op, i) => {
    encoded.writeUInt32LE(op.literal, i * OP_BYTES);
    encoded.writeUInt32LE(op.block, i * OP_BYTES + 4);
    encoded.writeUInt32LE(op.count, i * OP_BYTES + 8);
  });
  return encoded;
}

/** The ops of `encoded`, or undefined when its length is not a whole number of ops. */
export function decodeOps(encoded: Buffer): DeltaOp[] | undefined {
  if (encoded.length % OP_BYTES !== 0) return undefined;
  const ops: DeltaOp[] = [];
  for (let at = 0; at < encoded.length; at += OP_BYTES) {
    ops.push({
      literal: encoded.readUInt32LE(at),
      block: encoded.readUInt32LE(at + 4),
      count: encoded.readUInt32LE(at + 8),
    });
  }
  return ops;
}
