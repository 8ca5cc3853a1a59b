/**
 * A test's own hands on its files' extended attributes, by path (the test's files, which nothing
 * races). `fixtureIo` is the addon's platform I/O whatever TELEPORT_NATIVE says, so a test of
 * the portable mode can still tag its fixtures and check what a pull did to them.
 */
import { closeSync, constants, openSync } from "node:fs";
import { createRequire } from "node:module";
import { nativeIo, type PlatformIo, platformIo } from "../../src/platform/io.js";
import type { NativeAddon } from "../../src/platform/native.js";
import type { Xattr } from "../../src/wire/messages.js";

function loadAddon(): NativeAddon | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    return createRequire(import.meta.url)("../../../build/Release/teleport_io.node") as NativeAddon;
  } catch {
    return undefined; // not built
  }
}

const addon = loadAddon();

/** The addon's platform I/O, even under TELEPORT_NATIVE=0; undefined where it is not built. */
export const fixtureIo: PlatformIo | undefined = addon === undefined ? undefined : nativeIo(addon);

function withFile<T>(path: string, use: (fd: number) => T): T {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

/** The `user.` attributes of the file at `path`; undefined where `io` cannot read them. */
export function readXattrsAt(path: string, io: PlatformIo = platformIo): Xattr[] | undefined {
  return withFile(path, (fd) => io.readXattrs(fd));
}

/** Makes the `user.` attributes of the file at `path` exactly `xattrs`; false where `io` cannot. */
export function writeXattrsAt(path: string, xattrs: readonly Xattr[], io: PlatformIo = platformIo): boolean {
  return withFile(path, (fd) => io.writeXattrs(fd, xattrs));
}

/** An attribute from text. */
export function xattr(name: string, value: string): Xattr {
  return { name, value: Buffer.from(value) };
}

/** `name=value` of each attribute, for assertions. */
export function describeXattrs(xattrs: readonly Xattr[] | undefined): string[] | undefined {
  return xattrs?.map((x) => `${x.name}=${x.value.toString()}`);
}
