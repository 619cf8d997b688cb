import { describe, expect, it } from "vitest";
import { GroupMembersCache } from "../../../server/push/group-members-cache.js";

/** A store of groups whose reads are counted and can be held open. */
function store(groups: Record<string, string[]>) {
  const reads: string[] = [];
  let gate: Promise<void> | undefined;
  return {
    reads,
    hold() {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      return () => {
        gate = undefined;
        open();
      };
    },
    async listMembers(conversationId: string, after: string, limit: number): Promise<string[]> {
      reads.push(`${conversationId}>${after}`);
      if (gate !== undefined) await gate;
      const members = [...(groups[conversationId] ?? [])].sort();
      return members.filter((m) => m > after).slice(0, limit);
    },
  };
}

const byFirstLetter = (userId: string) => userId[0]!;
const flat = (partition: ReadonlyMap<string, readonly string[]> | undefined) =>
  partition === undefined ? undefined : Object.fromEntries([...partition].map(([k, v]) => [k, [...v].sort()]).sort());

function cache(s: ReturnType<typeof store>, bounds: Partial<{ groupsMax: number; idsMax: number; ttlMs: number; groupMembersMax: number }> = {}) {
  return new GroupMembersCache({ listMembers: (c, a, l) => s.listMembers(c, a, l), groupsMax: 100, idsMax: 1000, ttlMs: 60_000, groupMembersMax: 500, pageSize: 2, ...bounds });
}

describe("GroupMembersCache", () => {
  it("reads a group once, in pages, and groups its members by key", async () => {
    const s = store({ "g:a": ["ann", "bob", "amy", "ben", "cy"] });
    const c = cache(s);
    expect(flat(await c.partition("g:a", 0, 1, byFirstLetter))).toEqual({ a: ["amy", "ann"], b: ["ben", "bob"], c: ["cy"] });
    expect(s.reads).toEqual(["g:a>", "g:a>ann", "g:a>bob"]);
    await c.partition("g:a", 1000, 1, byFirstLetter);
    expect(s.reads).toHaveLength(3);
  });

  it("keeps a group current with the changes made here, without reading it again", async () => {
    const s = store({ "g:a": ["ann", "bob"] });
    const c = cache(s);
    await c.partition("g:a", 0, 1, byFirstLetter);
    c.changed("g:a", ["cy", "abe"], ["bob"]);
    expect(flat(await c.partition("g:a", 1, 1, byFirstLetter))).toEqual({ a: ["abe", "ann"], c: ["cy"] });
    expect(s.reads).toEqual(["g:a>", "g:a>bob"]);
  });

  it("applies a change made while the group is being read", async () => {
    const s = store({ "g:a": ["ann", "bob"] });
    const c = cache(s, { groupMembersMax: 10 });
    const open = s.hold();
    const reading = c.partition("g:a", 0, 1, byFirstLetter);
    c.changed("g:a", ["cy"], ["ann"]);
    open();
    expect(flat(await reading)).toEqual({ b: ["bob"], c: ["cy"] });
  });

  it("shares one read among concurrent callers", async () => {
    const s = store({ "g:a": ["ann"] });
    const c = cache(s);
    const [x, y] = await Promise.all([c.partition("g:a", 0, 1, byFirstLetter), c.partition("g:a", 0, 1, byFirstLetter)]);
    expect(x).toBe(y);
    expect(s.reads).toEqual(["g:a>"]);
  });

  it("groups again for a new version of the keys", async () => {
    const s = store({ "g:a": ["ann", "bob"] });
    const c = cache(s);
    await c.partition("g:a", 0, 1, byFirstLetter);
    expect(flat(await c.partition("g:a", 0, 2, () => "all"))).toEqual({ all: ["ann", "bob"] });
  });

  it("reads a group again once its entry is older than the ttl", async () => {
    const groups = { "g:a": ["ann"] };
    const s = store(groups);
    const c = cache(s, { ttlMs: 1000 });
    await c.partition("g:a", 0, 1, byFirstLetter);
    groups["g:a"] = ["ann", "bob"];
    expect(flat(await c.partition("g:a", 999, 1, byFirstLetter))).toEqual({ a: ["ann"] });
    expect(flat(await c.partition("g:a", 1000, 1, byFirstLetter))).toEqual({ a: ["ann"], b: ["bob"] });
  });

  it("answers undefined for a group over the size bound, remembered without its ids", async () => {
    const s = store({ "g:big": ["a1", "a2", "a3", "a4"] });
    const c = cache(s, { groupMembersMax: 3 });
    expect(await c.partition("g:big", 0, 1, byFirstLetter)).toBeUndefined();
    const reads = s.reads.length;
    expect(await c.partition("g:big", 1, 1, byFirstLetter)).toBeUndefined();
    expect(s.reads).toHaveLength(reads);
    expect(c.ids).toBe(0);
    // A change may bring it under the bound: it is read again.
    c.changed("g:big", [], ["a4"]);
    expect(flat(await c.partition("g:big", 2, 1, byFirstLetter))).toBeUndefined();
    expect(s.reads.length).toBeGreaterThan(reads);
  });

  it("forgets the least recently used groups beyond its bounds in groups and ids", async () => {
    const s = store({ "g:1": ["a", "b"], "g:2": ["c", "d"], "g:3": ["e", "f"] });
    const c = cache(s, { groupsMax: 2, idsMax: 100 });
    await c.partition("g:1", 0, 1, byFirstLetter);
    await c.partition("g:2", 0, 1, byFirstLetter);
    await c.partition("g:1", 0, 1, byFirstLetter);
    await c.partition("g:3", 0, 1, byFirstLetter);
    expect(c.groups).toBe(2);
    const reads = s.reads.length;
    await c.partition("g:1", 0, 1, byFirstLetter);
    expect(s.reads).toHaveLength(reads);
    await c.partition("g:2", 0, 1, byFirstLetter);
    expect(s.reads.length).toBeGreaterThan(reads);

    const byIds = cache(s, { groupsMax: 10, idsMax: 3 });
    await byIds.partition("g:1", 0, 1, byFirstLetter);
    await byIds.partition("g:2", 0, 1, byFirstLetter);
    expect(byIds.groups).toBe(1);
    expect(byIds.ids).toBe(2);
  });

  it("rejects when the store cannot be read, and reads again next time", async () => {
    let fail = true;
    const c = new GroupMembersCache({
      listMembers: async () => {
        if (fail) throw new Error("store down");
        return ["ann"];
      },
      groupsMax: 10,
      idsMax: 10,
      ttlMs: 1000,
      groupMembersMax: 10,
    });
    await expect(c.partition("g:a", 0, 1, byFirstLetter)).rejects.toThrow(/store down/);
    fail = false;
    expect(flat(await c.partition("g:a", 0, 1, byFirstLetter))).toEqual({ a: ["ann"] });
  });
});
