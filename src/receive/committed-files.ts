/**
 * The files a pull committed, by final path, with the identity (device, inode) each had: the only
 * files a HARDLINK entry may name. Every file of a pull is remembered (the manifest does not say
 * which have other names), so an entry is a path and a number, not an object: a tree of 200,000
 * files otherwise kept ~40 bytes more per file alive on the main thread, and every full GC
 * walked them.
 */
export interface FileIdentity {
  dev: number;
  ino: number;
}

export class CommittedFiles {
  /** Inode by final path. */
  readonly #inodes = new Map<string, number>();
  /** The device most files are on (the destination's): only others are kept per file. */
  #device: number | undefined;
  readonly #otherDevices = new Map<string, number>();

  remember(path: string, { dev, ino }: FileIdentity): void {
    this.#device ??= dev;
    this.#inodes.set(path, ino);
    if (dev === this.#device) this.#otherDevices.delete(path);
    else this.#otherDevices.set(path, dev);
  }

  identityOf(path: string): FileIdentity | undefined {
    const ino = this.#inodes.get(path);
    if (ino === undefined || this.#device === undefined) return undefined;
    return { dev: this.#otherDevices.get(path) ?? this.#device, ino };
  }
}
