/** A fixed, skewed latency sample (ms) for the histogram tests: mostly fast, 0.2% in a long tail. */
export function allValues(): number[] {
  const values: number[] = [];
  let x = 12345;
  for (let i = 0; i < 30_000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const u = x / 2 ** 32;
    values.push(i % 500 === 0 ? 500 + u * 2000 : 0.2 + -Math.log(1 - u) * 3);
  }
  return values;
}

/** The values of shard `index` of `count` (round-robin). */
export function shardValues(index: number, count: number): number[] {
  return allValues().filter((_, i) => i % count === index);
}
