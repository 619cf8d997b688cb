/** The `k6/encoding` module of the smoke harness: b64encode / b64decode with k6's variants. */

type Variant = "std" | "rawstd" | "url" | "rawurl";

export function b64encode(input: string | ArrayBuffer, encoding: Variant = "std"): string {
  const bytes = typeof input === "string" ? Buffer.from(input, "utf8") : Buffer.from(input);
  const url = encoding === "url" || encoding === "rawurl";
  let out = bytes.toString(url ? "base64url" : "base64");
  if (encoding === "rawstd") out = out.replace(/=+$/, "");
  if (encoding === "url") out += "=".repeat((4 - (out.length % 4)) % 4);
  return out;
}

export function b64decode(input: string, encoding: Variant = "std", format?: "s"): ArrayBuffer | string {
  const url = encoding === "url" || encoding === "rawurl";
  const bytes = Buffer.from(input, url ? "base64url" : "base64");
  if (format === "s") return bytes.toString("utf8");
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

export default { b64encode, b64decode };
