import { Client, InMemoryTransport, type JSONRPCMessage } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { keepProgressBeforeResponses } from '../../src/mcp/progress-order.js';

/** A raw server that answers each tools/call with a progress notification and the result in one go. */
async function rawServer(): Promise<InMemoryTransport> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  serverSide.onmessage = (message: JSONRPCMessage) => {
    if (!('method' in message) || !('id' in message)) return;
    if (message.method === 'initialize') {
      void serverSide.send({
        jsonrpc: '2.0',
        id: message.id,
        result: {
          protocolVersion: '2025-11-25',
          capabilities: { tools: {} },
          serverInfo: { name: 'raw', version: '1' },
        },
      });
    } else if (message.method === 'tools/call') {
      const token = (message.params as { _meta?: { progressToken?: string | number } })._meta?.progressToken;
      void serverSide.send({
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: token!, progress: 1, total: 1 },
      });
      void serverSide.send({ jsonrpc: '2.0', id: message.id, result: { content: [] } });
    }
  };
  await serverSide.start();
  return clientSide;
}

describe('keepProgressBeforeResponses', () => {
  it('delivers a progress notification that arrives right before its response', async () => {
    const transport = await rawServer();
    const client = new Client({ name: 'test', version: '0' });
    await client.connect(transport);
    keepProgressBeforeResponses(transport);
    let seen = 0;
    for (let i = 0; i < 20; i++) {
      await client.callTool({ name: 'x', arguments: {} }, { onprogress: () => seen++ });
    }
    expect(seen).toBe(20);
    await client.close();
  });
});
