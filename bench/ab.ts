/**
 * A/B: the hub built from another git revision (A, `AB_BASE`) against this checkout's build (B), on the REST
 * tool call of bench:calls (echo on server-everything), in alternating rounds so that the machine's drift falls
 * on both alike. Each round times `AB_CALLS` calls on each side and reads the hub's CPU time from /proc: its
 * main thread, and the whole process. Prints the ratios B / A, round by round summarized, for throughput and
 * CPU per call. These machines drift by more between runs than most single changes are worth; side by side,
 * a change of a few percent shows.
 * Settings: AB_BASE (HEAD: what this checkout changes), AB_ROUNDS (10), AB_CALLS (1000), AB_INFLIGHT (1),
 * BENCH_WARMUP (2000 calls per side), AB_RECORD (true: events recorded, as by default), AB_ENV_B (a JSON object
 * of environment variables for B only: with AB_BASE=HEAD and no change, it compares settings of one build),
 * AB_MESSAGE_BYTES (the echoed message's length; 55 by default, as in bench:calls), AB_PATH (`rest`: the REST tool
 * call; `stream`: client-message → server-response on one stream per side, as in bench:stream).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Socket } from 'socket.io-client';
import { projectRoot } from '../src/paths.js';
import { type BenchHub, type Caller, hubCaller, startBenchHub } from './lib/everything-hub.js';
import { printTable, type Summary, summarize, throughput } from './lib/measure.js';
import { hubStream, socketCaller } from './lib/stream-callers.js';

const base = process.env.AB_BASE ?? 'HEAD';
const rounds = Number(process.env.AB_ROUNDS ?? 10);
const calls = Number(process.env.AB_CALLS ?? 1000);
const inFlight = Number(process.env.AB_INFLIGHT ?? 1);
const warmup = Number(process.env.BENCH_WARMUP ?? 2000);
const record = process.env.AB_RECORD !== 'false';
const message = process.env.AB_MESSAGE_BYTES ? 'x'.repeat(Number(process.env.AB_MESSAGE_BYTES)) : undefined;
const envB = JSON.parse(process.env.AB_ENV_B ?? '{}') as Record<string, string>;
const overStream = process.env.AB_PATH === 'stream';
if (!['rest', 'stream', undefined].includes(process.env.AB_PATH))
  throw new Error('AB_PATH must be rest or stream');

/** Builds `rev` in a detached worktree that shares this checkout's node_modules; returns its main script. */
function buildRevision(rev: string): { main: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-ab-'));
  const git = (...args: string[]) => execFileSync('git', args, { cwd: projectRoot, stdio: 'pipe' });
  git('worktree', 'add', '--detach', dir, rev);
  const lock = (root: string) => readFileSync(path.join(root, 'package-lock.json'), 'utf8');
  if (lock(dir) !== lock(projectRoot))
    console.warn(`note: ${rev} has other dependencies; both sides use these`);
  symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  execFileSync(path.join(projectRoot, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], {
    cwd: dir,
    stdio: 'inherit',
  });
  return {
    main: path.join(dir, 'dist/src/main.js'),
    remove: () => git('worktree', 'remove', '--force', dir),
  };
}

/** CPU milliseconds used so far by the process's main thread and by all its threads (Linux /proc). */
function cpuMs(pid: number): { main: number; all: number } {
  const ticks = (file: string) => {
    const stat = readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
  return { main: ticks(`/proc/${pid}/task/${pid}/stat`), all: ticks(`/proc/${pid}/stat`) };
}

interface Side {
  name: string;
  hub: BenchHub;
  call: Caller;
  /** Ends what the caller holds open (the stream's socket). */
  release(): void;
  rate: number[];
  mainUs: number[];
  allUs: number[];
}

async function side(name: string, main: string, env: Record<string, string> = {}): Promise<Side> {
  const hub = await startBenchHub({ env: { SWITCHBOARD_RECORD_EVENTS: String(record), ...env }, main });
  const sample = { name, hub, rate: [], mainUs: [], allUs: [] };
  if (!overStream) return { ...sample, call: hubCaller(hub, message), release: () => {} };
  const stream = await hubStream(hub, 'ab');
  return {
    ...sample,
    call: socketCaller(stream.socket as unknown as Socket, message),
    release: () => stream.close(),
  };
}

async function round(s: Side): Promise<void> {
  const pid = s.hub.process.child.proc.pid!;
  const before = cpuMs(pid);
  s.rate.push(await throughput(s.call, calls, inFlight));
  const after = cpuMs(pid);
  s.mainUs.push(((after.main - before.main) * 1000) / calls);
  s.allUs.push(((after.all - before.all) * 1000) / calls);
}

if (!existsSync('/proc/self/stat')) throw new Error('bench:ab reads CPU times from /proc (Linux)');
const built = buildRevision(base);
const sides: Side[] = [];
try {
  sides.push(
    await side(`A (${base})`, built.main),
    await side('B (this checkout)', path.join(projectRoot, 'dist/src/main.js'), envB),
  );
  const [a, b] = sides as [Side, Side];
  for (const s of sides) for (let i = 0; i < warmup; i++) await s.call();
  for (let r = 0; r < rounds; r++) for (const s of r % 2 === 0 ? [a, b] : [b, a]) await round(s);

  const ratios = (f: (s: Side) => number[]) => summarize(f(b).map((v, i) => v / f(a)[i]!));
  const table = (title: string, f: (s: Side) => number[], unit: string) =>
    printTable(title, [
      { name: a.name, value: summarize(f(a)), unit },
      { name: b.name, value: summarize(f(b)), unit },
      { name: 'B / A, round by round', value: ratios(f), unit: '×' },
    ]);
  const what = `${rounds} rounds of ${calls} ${overStream ? 'stream' : 'REST'} calls, ${inFlight} in flight, recording ${record ? 'on' : 'off'}`;
  table(`Throughput (${what})`, (s) => s.rate, 'calls/s');
  table("The hub's main thread, CPU per call", (s) => s.mainUs, 'µs');
  table('The whole hub process, CPU per call', (s) => s.allUs, 'µs');
  // The mean of the rounds' ratios with twice its standard error: a change whose interval excludes 0 % is
  // more than the noise of this run.
  const verdict = (r: Summary) => {
    const n = r.runs.length;
    const mean = r.runs.reduce((x, y) => x + y, 0) / n;
    const sd = Math.sqrt(r.runs.reduce((x, y) => x + (y - mean) ** 2, 0) / (n - 1));
    const pct = (v: number) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)} %`;
    return `${pct(mean - 1)} ± ${((200 * sd) / Math.sqrt(n)).toFixed(1)} %`;
  };
  console.log("\nB vs A (mean of the rounds' ratios ± 2 standard errors)");
  console.log(`  throughput            ${verdict(ratios((s) => s.rate))}`);
  console.log(`  main-thread CPU/call  ${verdict(ratios((s) => s.mainUs))}`);
  console.log(`  process CPU/call      ${verdict(ratios((s) => s.allUs))}`);
} finally {
  for (const s of sides) s.release();
  await Promise.all(sides.map((s) => s.hub.close()));
  built.remove();
}
