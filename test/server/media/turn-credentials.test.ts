import { describe, expect, it } from "vitest";
import { parseUrlList, turnCredentials } from "../../../server/media/turn-credentials.js";

describe("turnCredentials()", () => {
  it("signs <expiry>:<user> with HMAC-SHA1 of the shared secret (TURN REST credentials)", () => {
    const set = turnCredentials({ urls: ["stun:t.example:3478", "turn:t.example:3478?transport=udp"], secret: "north-secret", ttlS: 3600 }, "alice", 1_700_000_000_500);
    expect(set).toEqual({
      iceServers: [
        { urls: ["stun:t.example:3478"], username: "", credential: "" },
        // base64(HMAC-SHA1("north-secret", "1700003600:alice")), computed independently.
        { urls: ["turn:t.example:3478?transport=udp"], username: "1700003600:alice", credential: "Ji4axghh2/aljHmsPgH9mtDGVLw=" },
      ],
      expiresAtMs: 1_700_003_600_000,
    });
  });

  it("gives no TURN entry without a secret, and nothing without URLs", () => {
    expect(turnCredentials({ urls: ["turn:t:1"], secret: "", ttlS: 60 }, "a", 0)).toEqual({ iceServers: [], expiresAtMs: 0 });
    expect(turnCredentials({ urls: [], secret: "s", ttlS: 60 }, "a", 0)).toEqual({ iceServers: [], expiresAtMs: 0 });
    expect(parseUrlList(" stun:a:1, ,turn:b:2 ")).toEqual(["stun:a:1", "turn:b:2"]);
  });
});
