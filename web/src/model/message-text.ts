/** What the view shows of a message body. */
export interface MessageBodyLike {
  readonly contentType: string;
  readonly data: Uint8Array;
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * The text of a message body: text/* bodies decoded as UTF-8 (bad bytes become U+FFFD), other
 * media types described by their type and size, since the server forwards any bytes.
 */
export function messageText(body: MessageBodyLike): string {
  if (body.contentType === "" || body.contentType.toLowerCase().startsWith("text/")) return decoder.decode(body.data);
  return `[${body.contentType}, ${body.data.byteLength} bytes]`;
}
