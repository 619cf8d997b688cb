import v8 from "node:v8";
import { readFileSync, rmSync } from "node:fs";
export function aggregateSync(): Map<string, { count: number; size: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const file = v8.writeHeapSnapshot("/tmp/exp/h.heapsnapshot");
  const snap = JSON.parse(readFileSync(file, "utf8"));
  rmSync(file);
  const { node_fields, node_types } = snap.snapshot.meta;
  const F = node_fields.length;
  const typeIdx = node_fields.indexOf("type"), nameIdx = node_fields.indexOf("name"), sizeIdx = node_fields.indexOf("self_size");
  const types = node_types[0];
  const out = new Map<string, { count: number; size: number }>();
  for (let i = 0; i < snap.nodes.length; i += F) {
    const t = types[snap.nodes[i + typeIdx]];
    const name = t === "object" || t === "closure" || t === "native" ? `${t}:${snap.strings[snap.nodes[i + nameIdx]]}` : t;
    const e = out.get(name) ?? { count: 0, size: 0 };
    e.count++; e.size += snap.nodes[i + sizeIdx];
    out.set(name, e);
  }
  return out;
}
