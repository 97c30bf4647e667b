import { describe, expect, it } from 'vitest';
import { deadline } from '../../src/mcp/deadline.js';

describe('deadline', () => {
  it('aborts when the time runs out, and says so', async () => {
    const d = deadline(undefined, 20, 'too slow');
    await new Promise((r) => setTimeout(r, 40));
    expect(d.signal.aborted).toBe(true);
    expect(d.signal.reason).toBe('too slow');
    expect(d.expired).toBe(true);
    d.dispose();
  });

  it('follows the caller, with its reason, and is not expired', () => {
    const caller = new AbortController();
    const d = deadline(caller.signal, 10_000, 'too slow');
    caller.abort('gone');
    expect(d.signal.aborted).toBe(true);
    expect(d.signal.reason).toBe('gone');
    expect(d.expired).toBe(false);
    d.dispose();
  });

  it('starts aborted under an aborted caller, and dispose detaches from the caller', () => {
    const aborted = AbortSignal.abort('already');
    expect(deadline(aborted, 1000, 'x').signal.aborted).toBe(true);
    const caller = new AbortController();
    const d = deadline(caller.signal, 10_000, 'x');
    d.dispose();
    caller.abort();
    expect(d.signal.aborted).toBe(false);
  });
});
