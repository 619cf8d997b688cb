import { MemoryMessageStore } from "../../../server/store/memory-message-store.js";
import { describeMessageStoreContract } from "./message-store-contract.js";

describeMessageStoreContract("MemoryMessageStore", () => new MemoryMessageStore());
