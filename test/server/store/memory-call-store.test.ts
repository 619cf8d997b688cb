import { MemoryCallStore } from "../../../server/store/memory-call-store.js";
import { describeCallStoreContract } from "./call-store-contract.js";

describeCallStoreContract("MemoryCallStore", async () => {
  const store = new MemoryCallStore();
  return { a: store, b: store, close: () => store.close() };
});
