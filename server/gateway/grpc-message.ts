const UTF8 = new TextEncoder();

/**
 * grpc-message percent-encoded as the gRPC spec says: only bytes outside 0x20-0x7E, and "%".
 * connect-es's setTrailerStatus uses encodeURIComponent, which also escapes ":", "/" or "@";
 * @grpc/grpc-js decodes with decodeURI, which leaves those escaped, so its users would read
 * `conversation "d%3Aalice%3Abob"`. Every gRPC trailer this server writes goes through here.
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of UTF8.encode(message)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
