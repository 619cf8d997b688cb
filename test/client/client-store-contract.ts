import { describe, expect, it } from "vitest";
import type { ClientMessage } from "../../client/client-message.js";
import type { PendingSend } from "../../client/client-protocol.js";
import { HISTORY_PAGE_MAX, type ClientStore } from "../../client/client-store.js";

/** An adapter under test: a fresh store, and for durable adapters a way to open it again. */
export interface StoreUnderTest {
  readonly store: ClientStore;
  /** A new instance over the same data (a restarted app); absent for adapters that keep nothing. */
  reopen?(): Promise<ClientStore>;
}

export function message(conversationId: string, seq: number, prevSeq: number, text = `${conversationId}#${seq}`): ClientMessage {
  return { conversationId, seq, prevSeq, messageId: `id-${conversationId}-${seq}`, senderId: "alice", sentAtMs: 1_700_000_000_000 + seq, contentType: "text/plain", data: new TextEncoder().encode(text), clientMsgId: `k-${seq}` };
}

function send(id: string, text = id): PendingSend {
  return { clientMsgId: id, conversationId: id.startsWith("d") ? "" : "g:team", toUserId: id.startsWith("d") ? "bob" : "", contentType: "text/plain", data: new TextEncoder().encode(text) };
}

const seqs = (messages: readonly ClientMessage[]) => messages.map((m) => m.seq);

/**
 * The ClientStore contract (client/client-store.ts), run on every adapter. `open` returns a
 * fresh, empty store each time; `historyMax` is the adapter's per-conversation bound.
 */
export function clientStoreContract(name: string, open: (options: { historyMax?: number }) => Promise<StoreUnderTest>, kind: { durable: boolean }): void {
  describe(`${name} (ClientStore contract)`, () => {
    it("starts empty", async () => {
      const { store } = await open({});
      expect(await store.load()).toEqual({ cursors: [], outbox: [] });
      expect(await store.messages("c")).toEqual([]);
      await store.close();
    });

    it("stores delivered messages with their cursor, and returns them ascending with their bytes", async () => {
      const { store } = await open({});
      await store.appendMessages("c", [message("c", 1, 0), message("c", 2, 1)], 2);
      await store.appendMessages("c", [message("c", 5, 2)], 5);
      expect(await store.messages("c")).toEqual([message("c", 1, 0), message("c", 2, 1), message("c", 5, 2)]);
      expect((await store.load()).cursors).toEqual([{ conversationId: "c", lastSeq: 5, readSeq: 0 }]);
      await store.close();
    });

    it("never moves a cursor back, and stores a seq once however often it is stored", async () => {
      const { store } = await open({});
      await store.appendMessages("c", [message("c", 1, 0), message("c", 2, 1)], 2);
      await store.setReadSeq("c", 2);
      await store.appendMessages("c", [message("c", 1, 0)], 1);
      await store.setReadSeq("c", 1);
      expect((await store.load()).cursors).toEqual([{ conversationId: "c", lastSeq: 2, readSeq: 2 }]);
      expect(seqs(await store.messages("c"))).toEqual([1, 2]);
      await store.close();
    });

    it("pages history: the newest `limit` below `beforeSeq`, ascending, on non-contiguous seqs", async () => {
      const { store } = await open({});
      const log = [1, 2, 3, 1001, 1002, 2000].map((seq, i, all) => message("c", seq, i === 0 ? 0 : all[i - 1]!));
      await store.appendMessages("c", log, 2000);
      expect(seqs(await store.messages("c", { limit: 2 }))).toEqual([1002, 2000]);
      expect(seqs(await store.messages("c", { beforeSeq: 1002, limit: 3 }))).toEqual([2, 3, 1001]);
      expect(seqs(await store.messages("c", { beforeSeq: 2, limit: 10 }))).toEqual([1]);
      expect(await store.messages("c", { beforeSeq: 1 })).toEqual([]);
      expect(await store.messages("c", { limit: 0 })).toEqual([]);
      await store.close();
    });

    it(`bounds a page at ${HISTORY_PAGE_MAX} messages`, async () => {
      const { store } = await open({});
      const log = Array.from({ length: HISTORY_PAGE_MAX + 5 }, (_, i) => message("c", i + 1, i));
      await store.appendMessages("c", log, log.length);
      const page = await store.messages("c", { limit: HISTORY_PAGE_MAX * 2 });
      expect(page).toHaveLength(HISTORY_PAGE_MAX);
      expect(page[page.length - 1]!.seq).toBe(log.length);
      await store.close();
    });

    it("keeps the newest historyMax messages of each conversation", async () => {
      const { store } = await open({ historyMax: 3 });
      await store.appendMessages("c", [1, 2, 3, 4].map((s) => message("c", s, s - 1)), 4);
      await store.appendMessages("c", [message("c", 5, 4)], 5);
      await store.appendMessages("d", [message("d", 1, 0)], 1);
      expect(seqs(await store.messages("c"))).toEqual([3, 4, 5]);
      expect(seqs(await store.messages("d"))).toEqual([1]);
      await store.close();
    });

    it("keeps conversations apart, and forgets a removed one", async () => {
      const { store } = await open({});
      await store.appendMessages("c", [message("c", 1, 0)], 1);
      await store.appendMessages("c2", [message("c2", 1, 0)], 1);
      await store.setReadSeq("c2", 1);
      await store.removeConversation("c");
      expect(await store.messages("c")).toEqual([]);
      expect(seqs(await store.messages("c2"))).toEqual([1]);
      expect((await store.load()).cursors).toEqual([{ conversationId: "c2", lastSeq: 1, readSeq: 1 }]);
      await store.close();
    });

    it("keeps the outbox in the order added; a repeated add or an absent remove changes nothing", async () => {
      const { store } = await open({});
      await store.addOutbox(send("g1"));
      await store.addOutbox(send("d2"));
      await store.addOutbox(send("g3"));
      await store.addOutbox(send("g1", "changed"));
      await store.removeOutbox("d2");
      await store.removeOutbox("never-added");
      expect((await store.load()).outbox).toEqual([send("g1"), send("g3")]);
      await store.close();
    });

    it("applies writes in the order they were called", async () => {
      const { store } = await open({});
      const writes = [store.appendMessages("c", [message("c", 1, 0)], 1), store.removeConversation("c"), store.appendMessages("c", [message("c", 2, 1)], 2), store.addOutbox(send("g1")), store.removeOutbox("g1")];
      await Promise.all(writes);
      expect(seqs(await store.messages("c"))).toEqual([2]);
      expect(await store.load()).toEqual({ cursors: [{ conversationId: "c", lastSeq: 2, readSeq: 0 }], outbox: [] });
      await store.close();
    });

    // Registered only for durable adapters: the memory adapter keeps nothing by design.
    if (kind.durable) {
      it("keeps everything across a reopen (an app restart)", async () => {
        const s = await open({});
        await s.store.appendMessages("c", [message("c", 1, 0), message("c", 3, 1)], 3);
        await s.store.setReadSeq("c", 1);
        await s.store.addOutbox(send("g9"));
        await s.store.close();
        const again = await s.reopen!();
        expect(await again.load()).toEqual({ cursors: [{ conversationId: "c", lastSeq: 3, readSeq: 1 }], outbox: [send("g9")] });
        expect(await again.messages("c")).toEqual([message("c", 1, 0), message("c", 3, 1)]);
        await again.close();
      });
    }
  });
}
