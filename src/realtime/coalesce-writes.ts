import type { Socket as NetSocket } from 'node:net';
import type { Server } from 'socket.io';
import { turnCoalescer } from '../write-coalescing.js';

/** What this reaches of an engine.io connection: its transport and, for WebSocket, ws's TCP socket (untyped). */
interface EngineConnection {
  transport: { name: string; socket?: { _socket?: NetSocket } };
}

/**
 * The frames one WebSocket connection sends in a turn of the event loop leave together (see turnCoalescer):
 * ws writes every frame with a syscall of its own. engine.io emits `flush` just before it hands a connection's
 * packets to its transport.
 */
export function coalesceWebSocketWrites(io: Server): void {
  const beforeWrite = turnCoalescer();
  io.engine.on('flush', (conn: EngineConnection) => {
    const tcp = conn.transport.name === 'websocket' ? conn.transport.socket?._socket : undefined;
    if (tcp) beforeWrite(tcp);
  });
}
