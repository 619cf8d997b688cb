import { parseArgs } from "node:util";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { ImClient } from "../client/im-client.js";
import { DEV_JWT_SECRET, mintToken } from "./gateway/auth.js";

const USAGE = `microchat CLI (development tool)

Usage: npm run cli -- <command> [options]

Commands:
  token <user> [--ttl SECONDS]                       print a bearer token for <user>
  send --as <user> (--to <user> | --conversation <id>) <text...>
                                                     send a message, print its seq
  tail --as <user>                                   print every message <user> receives (Ctrl-C to stop)
  sessions --as <user>                               print <user>'s session list
  create-group --as <user> --title <title> [--members a,b,c]
                                                     create a group, print its id

Options:
  --target URL   server (default http://127.0.0.1:$IM_PORT or :8080)
  --secret S     JWT secret (default $IM_JWT_SECRET or the development secret)
`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    as: { type: "string" },
    to: { type: "string" },
    conversation: { type: "string" },
    title: { type: "string" },
    members: { type: "string" },
    ttl: { type: "string" },
    target: { type: "string" },
    secret: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

const secret = values.secret ?? process.env.IM_JWT_SECRET ?? DEV_JWT_SECRET;
const target = values.target ?? `http://127.0.0.1:${process.env.IM_PORT ?? "8080"}`;
const [command, ...rest] = positionals;

function need(name: string, value: string | undefined): string {
  if (value === undefined || value === "") {
    process.stderr.write(`missing --${name}\n\n${USAGE}`);
    process.exit(2);
  }
  return value;
}

function clientFor(user: string): ImClient {
  return new ImClient({ transport: createGrpcTransport({ baseUrl: target }), token: () => mintToken(secret, user) });
}

async function main(): Promise<void> {
  switch (command) {
    case "token": {
      const user = need("user", rest[0]);
      process.stdout.write(`${await mintToken(secret, user, Number(values.ttl ?? 86_400))}\n`);
      return;
    }
    case "send": {
      const client = clientFor(need("as", values.as));
      client.start();
      const text = rest.join(" ");
      const result =
        values.conversation !== undefined
          ? await client.send({ conversationId: values.conversation, body: text })
          : await client.send({ toUserId: need("to", values.to), body: text });
      process.stdout.write(`${result.conversationId} seq=${result.seq} prev_seq=${result.prevSeq} id=${result.messageId}${result.duplicate ? " (duplicate)" : ""}\n`);
      await client.close();
      return;
    }
    case "tail": {
      const client = clientFor(need("as", values.as));
      client.on("message", (m) => {
        const body = m.contentType.startsWith("text/") ? new TextDecoder().decode(m.data) : `<${m.data.byteLength} bytes ${m.contentType}>`;
        process.stdout.write(`${new Date(m.sentAtMs).toISOString()} ${m.conversationId} #${m.seq} ${m.senderId}: ${body}\n`);
      });
      client.on("state", (s) => process.stderr.write(`[${s}]\n`));
      client.on("error", (e) => process.stderr.write(`[error] ${e.message}\n`));
      client.start();
      await new Promise<void>((resolve) => process.once("SIGINT", resolve));
      await client.close();
      return;
    }
    case "sessions": {
      const client = clientFor(need("as", values.as));
      let pageToken = "";
      do {
        const page = await client.conversations.listConversations({ pageToken });
        for (const s of page.sessions) {
          const name = s.title !== "" ? s.title : s.peerUserId;
          process.stdout.write(`${s.conversationId}\t${name}\tlast_seq=${s.lastSeq}\tread_seq=${s.readSeq}\tunread=${s.lastSeq - s.readSeq}\n`);
        }
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return;
    }
    case "create-group": {
      const client = clientFor(need("as", values.as));
      const members = (values.members ?? "").split(",").filter((m) => m !== "");
      const { conversation } = await client.conversations.createGroup({ title: need("title", values.title), memberUserIds: members });
      process.stdout.write(`${conversation?.conversationId}\n`);
      return;
    }
    default:
      process.stdout.write(USAGE);
      process.exit(values.help === true || command === undefined ? 0 : 2);
  }
}

main().catch((error: unknown) => {
  const e = ConnectError.from(error);
  process.stderr.write(`error: [${Code[e.code]}] ${e.rawMessage}\n`);
  process.exit(1);
});
