import { describe, expect, it } from "vitest";
import { PresenceLeases, type PresenceChange } from "../../../server/core/push-presence.js";

const TTL = 30_000;
const show = (changes: readonly PresenceChange[]) => changes.map((c) => `${c.userId}:${c.online ? "on" : "off"}`);

describe("PresenceLeases", () => {
  it("is online from the first process's report to the last one's end", () => {
    const p = new PresenceLeases(TTL);
    expect(show(p.report("w0", ["alice"], [], false, 0))).toEqual(["alice:on"]);
    expect(show(p.report("w1", ["alice"], [], false, 10))).toEqual([]);
    expect(show(p.report("w0", [], ["alice"], false, 20))).toEqual([]);
    expect(p.isOnline("alice")).toBe(true);
    expect(show(p.report("w1", [], ["alice"], false, 30))).toEqual(["alice:off"]);
    expect(p.isOnline("alice")).toBe(false);
    expect(p.onlineCount).toBe(0);
  });

  it("ignores an end from a process that never reported the user", () => {
    const p = new PresenceLeases(TTL);
    p.report("w0", ["alice"], [], false, 0);
    expect(show(p.report("w1", [], ["alice", "bob"], false, 1))).toEqual([]);
    expect(p.isOnline("alice")).toBe(true);
  });

  it("ends with a snapshot the leases of the users it no longer lists, at that process only", () => {
    const p = new PresenceLeases(TTL);
    p.report("w0", ["alice", "bob", "carol"], [], false, 0);
    p.report("w1", ["bob"], [], false, 0);
    expect(show(p.report("w0", ["carol", "dave"], [], true, 100))).toEqual(["alice:off", "dave:on"]);
    expect(p.isOnline("bob")).toBe(true);
    expect(show(p.report("w0", [], [], true, 200))).toEqual(["carol:off", "dave:off"]);
    expect(show(p.report("w1", [], [], true, 300))).toEqual(["bob:off"]);
  });

  it("lets a lease lapse when it is not renewed, and keeps a renewed one", () => {
    const p = new PresenceLeases(TTL);
    p.report("w0", ["alice", "bob"], [], false, 0);
    p.report("w0", ["bob"], [], false, TTL - 1);
    expect(show(p.expire(TTL - 1))).toEqual([]);
    expect(show(p.expire(TTL))).toEqual(["alice:off"]);
    expect(show(p.expire(2 * TTL - 2))).toEqual([]);
    expect(show(p.expire(2 * TTL - 1))).toEqual(["bob:off"]);
  });

  it("keeps a user online through another process's lease when one lapses", () => {
    const p = new PresenceLeases(TTL);
    p.report("w0", ["alice"], [], false, 0);
    p.report("w1", ["alice"], [], false, 20_000);
    expect(show(p.expire(TTL))).toEqual([]);
    expect(show(p.expire(20_000 + TTL))).toEqual(["alice:off"]);
  });

  it("ends a process's leases at once when it leaves", () => {
    const p = new PresenceLeases(TTL);
    p.report("w0", ["alice", "bob"], [], false, 0);
    p.report("w1", ["bob"], [], false, 0);
    expect(show(p.processGone("w0"))).toEqual(["alice:off"]);
    expect(show(p.processGone("w0"))).toEqual([]);
    expect(p.isOnline("bob")).toBe(true);
  });

  it("refuses a lease that is not positive", () => {
    expect(() => new PresenceLeases(0)).toThrow(/positive/);
  });
});
