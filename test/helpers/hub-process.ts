import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../src/paths.js';
import { type Child, freePort, startChild, waitForHttp } from './processes.js';

export const processToken = 'process-token-0123456789abcdef';

export interface HubProcess {
  child: Child;
  base: string;
  dataDir: string;
  headers: Record<string, string>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * The built hub (`node dist/src/main.js`, or `main`: another build of it) as a real process on a free loopback
 * port.
 */
export async function startHubProcess(
  env: Record<string, string> = {},
  dataDir?: string,
  main = path.join(projectRoot, 'dist/src/main.js'),
): Promise<HubProcess> {
  const port = await freePort();
  const dir = dataDir ?? (await mkdtemp(path.join(tmpdir(), 'sb-proc-')));
  const child = startChild(process.execPath, [main], {
    PORT: String(port),
    HOST: '127.0.0.1',
    SWITCHBOARD_DATA_DIR: dir,
    SWITCHBOARD_API_TOKEN: processToken,
    SWITCHBOARD_RATE_LIMIT_PER_MINUTE: '100000000',
    LOG_LEVEL: 'warn',
    ...env,
  });
  const exited = new Promise<number | null>((resolve) => child.proc.once('exit', (code) => resolve(code)));
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/readyz`, 60_000, child);
  return {
    child,
    base,
    dataDir: dir,
    headers: { authorization: `Bearer ${processToken}`, 'content-type': 'application/json' },
    exited,
    async stop() {
      await child.stop();
      if (!dataDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
