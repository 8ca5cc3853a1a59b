import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteBudget } from "../../src/engine/byte-budget.js";

/** Settles pending promise callbacks. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test("takes what fits at once and makes the rest wait for bytes given back", async () => {
  const budget = new ByteBudget(100);
  assert.equal(await budget.take(60), 60);
  let second = false;
  const waiting = budget.take(60).then(() => {
    second = true;
  });
  await settle();
  assert.equal(second, false);
  assert.equal(budget.waiting, 1);
  budget.give(60);
  await waiting;
  assert.equal(budget.usedBytes, 60);
});

test("waiters go in the order they came: a small request does not pass a large one", async () => {
  const budget = new ByteBudget(100);
  await budget.take(90);
  const order: string[] = [];
  const large = budget.take(80).then(() => order.push("large"));
  const small = budget.take(5).then(() => order.push("small"));
  await settle();
  assert.deepEqual(order, [], "the small one fits, but waits behind the large one");
  budget.give(90);
  await Promise.all([large, small]);
  assert.deepEqual(order, ["large", "small"]);
  assert.equal(budget.usedBytes, 85);
});

test("a request larger than the whole budget waits for all of it and takes all of it", async () => {
  const budget = new ByteBudget(100);
  await budget.take(1);
  const taking = budget.take(500);
  budget.give(1);
  assert.equal(await taking, 100);
  assert.equal(budget.usedBytes, 100);
});

test("an aborted waiter leaves the line, and the ones behind it go if they fit", async () => {
  const budget = new ByteBudget(100);
  await budget.take(50);
  const abort = new AbortController();
  const large = budget.take(80, abort.signal);
  const small = budget.take(40);
  abort.abort();
  await assert.rejects(large, { code: "TELEPORT_ERR_CANCELLED" });
  assert.equal(await small, 40);
  assert.equal(budget.usedBytes, 90);
  await assert.rejects(budget.take(1, abort.signal), { code: "TELEPORT_ERR_CANCELLED" });
});

test("giving back more than was taken is a bug, and says so", () => {
  const budget = new ByteBudget(10);
  assert.throws(() => budget.give(1), /more than was taken/);
});

test("owners take turns: one with many requests waiting does not crowd out one with a single request", async () => {
  const budget = new ByteBudget(10);
  await budget.take(10);
  const order: string[] = [];
  const waiting = [
    ...["a1", "a2", "a3"].map((name) => budget.take(10, undefined, "a").then(() => order.push(name))),
    budget.take(10, undefined, "b").then(() => order.push("b1")),
  ];
  for (let i = 0; i < 4; i++) {
    budget.give(10);
    await settle();
  }
  await Promise.all(waiting);
  assert.deepEqual(order, ["a1", "b1", "a2", "a3"]);
});
