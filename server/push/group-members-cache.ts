/** How the cache reads a group's members: a page of ids after `afterUserId`, in id order. */
export type ListMembers = (conversationId: string, afterUserId: string, limit: number) => Promise<string[]>;

/** Bounds of the cache. */
export interface GroupMembersCacheOptions {
  readonly listMembers: ListMembers;
  /** Groups held; the least recently used is forgotten first. */
  readonly groupsMax: number;
  /** Member ids held over all groups. */
  readonly idsMax: number;
  /** A group is read again this long after it was read (changes made at other processes). */
  readonly ttlMs: number;
  /** Groups larger than this are not held (answered `undefined`). */
  readonly groupMembersMax: number;
  /** Ids read per page. */
  readonly pageSize?: number;
}

interface Entry {
  readonly members: Set<string>;
  /** Larger than groupMembersMax when read: remembered (without its ids) until read again. */
  readonly tooLarge: boolean;
  readonly loadedAtMs: number;
  /** Members grouped by a key (their push home), for the partition version it was made for. */
  partition: { readonly version: number; readonly groups: ReadonlyMap<string, readonly string[]> } | undefined;
}

interface Loading {
  readonly done: Promise<Entry>;
  /** Changes made while the read runs, applied to what it read. */
  readonly changes: { readonly added: readonly string[]; readonly removed: readonly string[] }[];
}

/**
 * The members of groups, at the process that carries out their sends, so that offline push
 * needs no store read per message: read once (paged), kept current by the member changes made
 * here, read again after `ttlMs` (a change carried out at another process, when the owner was
 * unreachable, is seen within it), and bounded in groups and ids.
 */
export class GroupMembersCache {
  readonly #options: GroupMembersCacheOptions;
  readonly #pageSize: number;
  /** In use order: the first is the least recently used. */
  readonly #entries = new Map<string, Entry>();
  readonly #loading = new Map<string, Loading>();
  #ids = 0;

  constructor(options: GroupMembersCacheOptions) {
    this.#options = options;
    this.#pageSize = options.pageSize ?? 1000;
  }

  get groups(): number {
    return this.#entries.size;
  }

  get ids(): number {
    return this.#ids;
  }

  /**
   * The members of `conversationId` grouped by `keyOf` (made once per `version` of the
   * grouping); undefined when the group is larger than `groupMembersMax`. Rejects when the
   * store cannot be read.
   */
  async partition(conversationId: string, nowMs: number, version: number, keyOf: (userId: string) => string): Promise<ReadonlyMap<string, readonly string[]> | undefined> {
    const entry = await this.#get(conversationId, nowMs);
    if (entry.tooLarge) return undefined;
    if (entry.partition?.version !== version) {
      const groups = new Map<string, string[]>();
      for (const userId of entry.members) {
        const key = keyOf(userId);
        let ids = groups.get(key);
        if (ids === undefined) groups.set(key, (ids = []));
        ids.push(userId);
      }
      entry.partition = { version, groups };
    }
    return entry.partition.groups;
  }

  /** Members were added or removed here. */
  changed(conversationId: string, added: readonly string[], removed: readonly string[]): void {
    this.#loading.get(conversationId)?.changes.push({ added, removed });
    const entry = this.#entries.get(conversationId);
    if (entry === undefined) return;
    // A large group's changes do not tell whether it is still too large: read it again.
    if (entry.tooLarge) this.#forget(conversationId, entry);
    else this.#apply(conversationId, entry, added, removed);
  }

  /** Forgets every group. */
  clear(): void {
    this.#entries.clear();
    this.#ids = 0;
  }

  async #get(conversationId: string, nowMs: number): Promise<Entry> {
    const entry = this.#entries.get(conversationId);
    if (entry !== undefined && nowMs - entry.loadedAtMs < this.#options.ttlMs) {
      this.#entries.delete(conversationId);
      this.#entries.set(conversationId, entry);
      return entry;
    }
    let loading = this.#loading.get(conversationId);
    if (loading === undefined) {
      const changes: Loading["changes"] = [];
      loading = { done: this.#load(conversationId, nowMs, changes), changes };
      this.#loading.set(conversationId, loading);
      const settle = () => {
        if (this.#loading.get(conversationId) === loading) this.#loading.delete(conversationId);
      };
      loading.done.then(settle, settle);
    }
    return loading.done;
  }

  async #load(conversationId: string, nowMs: number, changes: Loading["changes"]): Promise<Entry> {
    const { listMembers, groupMembersMax } = this.#options;
    let members = new Set<string>();
    let tooLarge = false;
    let after = "";
    for (;;) {
      const page = await listMembers(conversationId, after, this.#pageSize);
      for (const id of page) members.add(id);
      if (members.size > groupMembersMax) {
        tooLarge = true;
        members = new Set();
        break;
      }
      if (page.length < this.#pageSize) break;
      after = page[page.length - 1]!;
    }
    const old = this.#entries.get(conversationId);
    if (old !== undefined) this.#forget(conversationId, old);
    const entry: Entry = { members, tooLarge, loadedAtMs: nowMs, partition: undefined };
    if (!tooLarge) for (const change of changes) this.#applyTo(entry, change.added, change.removed);
    this.#entries.set(conversationId, entry);
    this.#ids += entry.members.size;
    this.#evict();
    return entry;
  }

  #apply(conversationId: string, entry: Entry, added: readonly string[], removed: readonly string[]): void {
    this.#ids -= entry.members.size;
    this.#applyTo(entry, added, removed);
    this.#ids += entry.members.size;
    if (entry.members.size > this.#options.groupMembersMax) this.#forget(conversationId, entry);
    else this.#evict();
  }

  #applyTo(entry: Entry, added: readonly string[], removed: readonly string[]): void {
    for (const id of added) entry.members.add(id);
    for (const id of removed) entry.members.delete(id);
    entry.partition = undefined;
  }

  #forget(conversationId: string, entry: Entry): void {
    if (this.#entries.get(conversationId) !== entry) return;
    this.#entries.delete(conversationId);
    this.#ids -= entry.members.size;
  }

  #evict(): void {
    while (this.#entries.size > this.#options.groupsMax || (this.#ids > this.#options.idsMax && this.#entries.size > 1)) {
      const [oldestId, oldest] = this.#entries.entries().next().value!;
      this.#forget(oldestId, oldest);
    }
  }
}
