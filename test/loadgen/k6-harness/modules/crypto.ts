/** The `k6/crypto` module of the smoke harness: hmac (what the scripts use to sign tokens). */
import { createHmac } from "node:crypto";

const ALGORITHMS: Record<string, string> = { sha256: "sha256", sha384: "sha384", sha512: "sha512", sha1: "sha1", md5: "md5" };

export function hmac(algorithm: string, secret: string | ArrayBuffer, data: string | ArrayBuffer, outputEncoding: string): string | ArrayBuffer {
  const name = ALGORITHMS[algorithm];
  if (name === undefined) throw new Error(`hmac: unsupported algorithm ${algorithm}`);
  const digest = createHmac(name, typeof secret === "string" ? secret : Buffer.from(secret))
    .update(typeof data === "string" ? data : Buffer.from(data))
    .digest();
  switch (outputEncoding) {
    case "hex":
      return digest.toString("hex");
    case "base64":
      return digest.toString("base64");
    case "base64url":
      return digest.toString("base64url") + "=".repeat((4 - (digest.toString("base64url").length % 4)) % 4);
    case "base64rawurl":
      return digest.toString("base64url");
    case "binary":
      return digest.buffer.slice(digest.byteOffset, digest.byteOffset + digest.byteLength);
    default:
      throw new Error(`hmac: unsupported output encoding ${outputEncoding}`);
  }
}

export default { hmac };
