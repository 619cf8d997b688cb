import { describe, expect, it } from "vitest";
import { MemoryMessageStore } from "../../server/store/memory-message-store.js";
import { SeqGapStore } from "../../sim/seq-gap-store.js";
import { describeMessageStoreContract } from "../server/store/message-store-contract.js";

describeMessageStoreContract("SeqGapStore, a takeover before every append", () => new SeqGapStore(new MemoryMessageStore(), () => true));

let draws = 0;
describeMessageStoreContract("SeqGapStore, a takeover before every third append", () => new SeqGapStore(new MemoryMessageStore(), () => ++draws % 3 === 0));

describe("SeqGapStore", () => {
  const newMessage = (clientMsgId: string) => ({ conversationId: "g:t", senderId: "a", clientMsgId, messageId: clientMsgId, sentAtMs: 1, contentType: "text/plain", data: new Uint8Array(1) });

  it("continues after the reserved block of the previous owner at a takeover, and chains every message exactly", async () => {
    const takeovers = [false, false, true, false, true, true];
    const store = new SeqGapStore(new MemoryMessageStore(), () => takeovers.shift() ?? false);
    await store.createGroup({ id: "g:t", title: "", ownerId: "a", createdAtMs: 0 }, ["a", "b"]);
    const seqs = [];
    for (let i = 0; i < 7; i++) seqs.push((await store.append(newMessage(`c${i}`))).message.seq);
    expect(seqs).toEqual([1, 2, 101, 102, 201, 301, 302]);
    const log = await store.readRange("g:t", 0, undefined, 100);
    expect(log.map((m) => [m.seq, m.prevSeq])).toEqual([[1, 0], [2, 1], [101, 2], [102, 101], [201, 102], [301, 201], [302, 301]]);
    expect((await store.readRange("g:t", 2, 201, 100)).map((m) => m.seq)).toEqual([101, 102, 201]);
    expect((await store.readRange("g:t", 150, 250, 100)).map((m) => m.seq)).toEqual([201]);
    expect(await store.getConversation("g:t")).toMatchObject({ lastSeq: 302, lastMessage: { seq: 302, prevSeq: 301 } });
    expect((await store.listSessions("b", 10))[0]).toMatchObject({ lastSeq: 302, lastMessage: { seq: 302 } });
    expect((await store.append(newMessage("c3"))).message).toMatchObject({ seq: 102, prevSeq: 101 });
  });
});
