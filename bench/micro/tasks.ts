/**
 * Every micro task, prepared with its fixtures, in the order they run and are reported: hashing,
 * chunking, compression, the wire, then the references (memcpy, TLS) they are judged against.
 */
import { mkdirSync } from "node:fs";
import { prepareChunkingTasks } from "./chunking.js";
import { prepareCompressionTasks } from "./compression.js";
import { prepareHashingTasks } from "./hashing.js";
import { prepareMemoryTasks } from "./memory.js";
import type { MicroTask, TaskGroup } from "./task.js";
import { prepareTlsTasks } from "./tls.js";
import { prepareWireTasks } from "./wire.js";

export interface MicroTaskOptions {
  quick: boolean;
  /** Where the chunking payload and the TLS identity go; created if missing. */
  scratchDir: string;
}

/** A hot path the brief asks about that teleport does not have yet: reported, never measured. */
export interface NotImplemented {
  name: string;
  reason: string;
}

export interface MicroTasks {
  tasks: MicroTask[];
  notImplemented: NotImplemented[];
  close(): Promise<void>;
}

export const NOT_IMPLEMENTED: NotImplemented[] = [];

export async function prepareMicroTasks(options: MicroTaskOptions): Promise<MicroTasks> {
  mkdirSync(options.scratchDir, { recursive: true });
  const groups: TaskGroup[] = [];
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      for (const group of [...groups].reverse()) await group.close?.();
    })();
    return closing;
  };
  try {
    groups.push(prepareHashingTasks());
    groups.push(await prepareChunkingTasks(options.scratchDir));
    groups.push(prepareCompressionTasks());
    groups.push(prepareWireTasks());
    groups.push(prepareMemoryTasks());
    // Quick: 64 MiB transfers take ~0.1 s each here; full mode's 256 MiB dwarf the handshake.
    groups.push(
      await prepareTlsTasks({
        mib: options.quick ? 64 : 256,
        transfers: options.quick ? 1 : 2,
        scratchDir: options.scratchDir,
      }),
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { tasks: groups.flatMap((group) => group.tasks), notImplemented: NOT_IMPLEMENTED, close };
}
