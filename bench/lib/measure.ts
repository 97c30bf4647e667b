/** Timing helpers shared by the benchmarks: throughput of a call, sequential or N in flight, repeated. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

export async function throughput(
  call: () => Promise<unknown>,
  total: number,
  inFlight: number,
): Promise<number> {
  let started = 0;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (started < total) {
        started++;
        await call();
      }
    }),
  );
  return total / ((nowMs() - t0) / 1000);
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]!, runs: values };
}

/** ± half the spread of the runs as a percentage of the median, like undici's printResults tolerance. */
export const tolerance = (s: Summary) => (s.median === 0 ? 0 : ((s.max - s.min) / 2 / s.median) * 100);

export function printTable(
  title: string,
  rows: { name: string; value: Summary; unit: string; note?: string }[],
): void {
  console.log(`\n${title}`);
  const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
  const lines = rows.map((r) => [
    r.name,
    `${fmt(r.value.median)} ${r.unit}`,
    `± ${tolerance(r.value).toFixed(1)} %`,
    `[${fmt(r.value.min)}–${fmt(r.value.max)}]`,
    r.note ?? '',
  ]);
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  for (const l of lines) console.log(`  ${l.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`);
}

/** Prints a ratio and, when it has one, whether its goal is met (an explanatory ratio has none). */
export function ratioLine(
  name: string,
  value: number,
  goal?: number,
  direction: 'min' | 'max' = 'min',
): boolean {
  if (goal === undefined) {
    console.log(`  ${name.padEnd(52)} ${value.toFixed(2)}×`);
    return true;
  }
  const met = direction === 'min' ? value >= goal : value <= goal;
  console.log(
    `  ${name.padEnd(52)} ${value.toFixed(2)}×  (goal ${direction === 'min' ? '≥' : '≤'} ${goal}) ${met ? 'met' : 'NOT MET'}`,
  );
  return met;
}
