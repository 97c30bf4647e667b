import type { Socket as NetSocket } from 'node:net';
import type { Server } from 'socket.io';

/** What this reaches of an engine.io connection: its transport and, for WebSocket, ws's TCP socket (untyped). */
interface EngineConnection {
  transport: { name: string; socket?: { _socket?: NetSocket } };
}

/**
 * The frames a connection sends after its first one in a turn of the event loop leave in one write. ws
 * writes every frame with a syscall of its own, and under load, when one read from an upstream server
 * carries many answers for the same client, those syscalls were the hub's largest single cost. The first
 * flush of a turn goes out at once (a lone answer, or one frame to each of many sockets in a fan-out, waits
 * for nothing); from a connection's second flush on, its TCP socket is corked until that turn's I/O
 * callbacks have run (setImmediate), so no frame waits for a timer.
 */
export function coalesceWebSocketWrites(io: Server): void {
  let flushed = new Set<NetSocket>();
  let corked: NetSocket[] = [];
  let scheduled = false;
  const endTurn = () => {
    scheduled = false;
    const toUncork = corked;
    flushed = new Set();
    corked = [];
    for (const tcp of toUncork) tcp.uncork();
  };
  io.engine.on('flush', (conn: EngineConnection) => {
    if (conn.transport.name !== 'websocket') return;
    const tcp = conn.transport.socket?._socket;
    if (!tcp || tcp.destroyed) return;
    if (!flushed.has(tcp)) {
      flushed.add(tcp);
    } else if (tcp.writableCorked === 0) {
      tcp.cork();
      corked.push(tcp);
    }
    if (!scheduled) {
      scheduled = true;
      setImmediate(endTurn);
    }
  });
}
