import type { Writable } from 'node:stream';

/**
 * Write coalescing for streams that are written one small message at a time (a WebSocket's TCP socket, a stdio
 * server's stdin): Node writes each message with a syscall of its own, and under load those syscalls were the
 * hub's largest single cost. Returns the function to call before each write to a stream. A stream's first write
 * in a turn of the event loop goes out at once (a lone answer, or one frame to each of many sockets in a
 * fan-out, waits for nothing); from its second write in the turn on, the stream is corked until that turn's I/O
 * callbacks have run (setImmediate), so its writes leave together and none waits for a timer.
 */
export function turnCoalescer(): (stream: Writable) => void {
  let written = new Set<Writable>();
  let corked: Writable[] = [];
  let scheduled = false;
  const endTurn = () => {
    scheduled = false;
    const toUncork = corked;
    written = new Set();
    corked = [];
    for (const stream of toUncork) stream.uncork();
  };
  return (stream) => {
    if (stream.destroyed) return;
    if (!written.has(stream)) {
      written.add(stream);
    } else if (stream.writableCorked === 0) {
      stream.cork();
      corked.push(stream);
    }
    if (!scheduled) {
      scheduled = true;
      setImmediate(endTurn);
    }
  };
}
