/**
 * Child process of the histogram merge test: records the values of one shard into a
 * LatencyHistogram and prints its encoded form.
 */
import { LatencyHistogram } from "../../../loadgen/latency-histogram.js";
import { shardValues } from "./histogram-values.js";

const [shard, shards] = process.argv.slice(2).map(Number);
const h = new LatencyHistogram();
for (const v of shardValues(shard!, shards!)) h.record(v);
process.stdout.write(h.encode());
