import { describe, expect, it } from "vitest";
import { parseLoadgenArgs, usage, type LoadgenOptions } from "../../loadgen/options.js";
import { DEV_JWT_SECRET } from "../../server/gateway/auth.js";

const parse = (args: string, env: NodeJS.ProcessEnv = {}) => parseLoadgenArgs(args.split(" "), env, new Date("2026-01-02T03:04:05Z")) as LoadgenOptions;

describe("parseLoadgenArgs()", () => {
  it("applies defaults: one process, OS-chosen source address, the development secret", () => {
    const o = parse("connections --target 127.0.0.1:8080");
    expect(o).toMatchObject({
      scenario: "connections",
      processes: 1,
      streamsPerConnection: 1,
      sourceAddresses: [],
      jwtSecret: DEV_JWT_SECRET,
      out: "loadgen-results/connections-20260102-030405",
      params: { connections: 1000, "hold-s": 30, probe: 1, "probe-rate": 500 },
    });
  });

  it.each([
    ["connections", "lean"],
    ["group-fanout", "lean"],
    ["offline-sync", "sdk"],
  ])("runs %s with %s devices unless told otherwise", (scenario, device) => {
    expect(parse(`${scenario} --target 127.0.0.1:8080`).device).toBe(device);
  });

  it("takes the device kind, several targets and the servers' Redis", () => {
    const o = parse("group-fanout --target 127.0.0.1:8080,127.0.0.1:8081 --device sdk --redis-url redis://127.0.0.1:6379");
    expect(o).toMatchObject({ device: "sdk", target: "127.0.0.1:8080,127.0.0.1:8081", targets: ["127.0.0.1:8080", "127.0.0.1:8081"], redisUrl: "redis://127.0.0.1:6379" });
  });

  it("forks one client process per 15000 sockets and adds a loopback source address per 12000 past 12000", () => {
    const o = parse("connections --target 127.0.0.1:8080 --connections 40000");
    expect(o.processes).toBe(3);
    expect(o.sourceAddresses).toEqual(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]);
    expect(parse("connections --target 127.0.0.1:8080 --connections 12000").sourceAddresses).toEqual([]);
  });

  it("counts sockets, not devices, when devices share connections", () => {
    const o = parse("connections --target 127.0.0.1:8080 --connections 40000 --streams-per-connection 4 --device sdk");
    expect(o.processes).toBe(1);
    expect(o.sourceAddresses).toEqual([]);
  });

  it.each([
    ["a count", "--source-addresses 3", ["127.0.0.2", "127.0.0.3", "127.0.0.4"]],
    ["a list", "--source-addresses 127.0.0.9,127.0.0.10", ["127.0.0.9", "127.0.0.10"]],
    ["none", "--source-addresses none", []],
  ])("takes source addresses as %s", (_what, flag, expected) => {
    expect(parse(`connections --target 127.0.0.1:8080 ${flag}`).sourceAddresses).toEqual(expected);
  });

  it("takes the secret from IM_JWT_SECRET and 'none' for no report files", () => {
    const o = parse("group-fanout --target 127.0.0.1:8080 --out none", { IM_JWT_SECRET: "s3cret" });
    expect(o.jwtSecret).toBe("s3cret");
    expect(o.out).toBeUndefined();
  });

  it.each([
    ["an unknown scenario", "nope --target 127.0.0.1:1", /unknown scenario/],
    ["no target", "connections", /--target/],
    ["a target without port", "connections --target localhost", /host:port/],
    ["another scenario's flag", "connections --target 127.0.0.1:1 --groups 3", /Unknown option/],
    ["more sockets than the open-files limit allows", "connections --target 127.0.0.1:1 --connections 40000 --processes 1", /open-files limit/],
    ["loopback source addresses for a remote target", "connections --target 10.0.0.1:80 --source-addresses 2", /loopback/],
    ["senders beyond the members", "group-fanout --target 127.0.0.1:1 --groups 1 --members 2 --senders 3", /--senders/],
    ["messages not divisible over conversations", "offline-sync --target 127.0.0.1:1 --messages 5 --conversations 2", /multiple/],
    ["a negative number", "connections --target 127.0.0.1:1 --hold-s=-1", /integer/],
    ["an unknown device kind", "connections --target 127.0.0.1:1 --device phone", /--device lean or --device sdk/],
    ["lean devices for a scenario that needs the SDK's sync", "offline-sync --target 127.0.0.1:1 --device lean", /offline-sync runs with --device sdk/],
    ["lean devices sharing connections", "connections --target 127.0.0.1:1 --streams-per-connection 2", /lean devices hold one connection each/],
    ["one bad target in a list", "connections --target 127.0.0.1:1,nope", /host:port/],
    ["a Redis address that is not a redis:// URL", "group-fanout --target 127.0.0.1:1 --redis-url 127.0.0.1:6379", /--redis-url/],
  ])("rejects %s", (_what, args, message) => {
    expect(() => parse(args)).toThrow(message);
  });

  it("answers help, and the usage lists every scenario", () => {
    expect(parseLoadgenArgs(["--help"], {})).toBe("help");
    for (const name of ["connections", "group-fanout", "offline-sync"]) expect(usage()).toContain(name);
  });
});
