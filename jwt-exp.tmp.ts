import { createHmac, createSecretKey, timingSafeEqual } from "node:crypto";
import { createVerifier } from "fast-jwt";
import { mintToken } from "./server/gateway/auth.js";
const secret = "s3cret";
const tokens = await Promise.all(Array.from({ length: 2000 }, (_, i) => mintToken(secret, `user${i}`)));
const v = createVerifier({ key: secret, algorithms: ["HS256"], clockTolerance: 5000 });
for (const pass of [1, 2, 3]) {
  let t = performance.now(); for (const tk of tokens) v(tk); const a = (performance.now() - t) / tokens.length;
  const key = createSecretKey(Buffer.from(secret));
  t = performance.now();
  for (const tk of tokens) { const dot = tk.lastIndexOf("."); const sig = Buffer.from(tk.slice(dot + 1), "base64url"); const mac = createHmac("sha256", key).update(tk.slice(0, dot)).digest(); if (!timingSafeEqual(sig, mac)) throw 1; JSON.parse(Buffer.from(tk.slice(tk.indexOf(".") + 1, dot), "base64url").toString()); }
  const b = (performance.now() - t) / tokens.length;
  console.log(`pass ${pass}: fast-jwt ${(a * 1000).toFixed(1)} µs, raw hmac ${(b * 1000).toFixed(1)} µs`);
}
