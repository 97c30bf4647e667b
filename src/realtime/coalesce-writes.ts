import type { Socket as NetSocket } from 'node:net';
import type { Server } from 'socket.io';

/** What this reaches of an engine.io connection: its transport and, for WebSocket, ws's TCP socket (untyped). */
interface EngineConnection {
  transport: { name: string; socket?: { _socket?: NetSocket } };
}

/**
 * Frames a connection sends in one turn of the event loop leave in one write. ws writes every frame with a
 * syscall of its own, and under load, when one read from an upstream server carries many answers, those
 * syscalls were the hub's largest single cost. The TCP socket is corked at a turn's first flush and uncorked
 * once that turn's I/O callbacks have run (setImmediate), so no frame waits for a timer.
 */
export function coalesceWebSocketWrites(io: Server): void {
  const corked = new WeakSet<NetSocket>();
  io.engine.on('flush', (conn: EngineConnection) => {
    if (conn.transport.name !== 'websocket') return;
    const tcp = conn.transport.socket?._socket;
    if (!tcp || corked.has(tcp) || tcp.destroyed) return;
    corked.add(tcp);
    tcp.cork();
    setImmediate(() => {
      corked.delete(tcp);
      tcp.uncork();
    });
  });
}
