import type { Transport } from '@modelcontextprotocol/client';

/**
 * The SDK client hands notifications to their handlers a microtask later but settles responses at once,
 * so a progress notification that arrives just before its response (in the same read) finds its request
 * already gone and is dropped: the caller misses the last progress. Delivering responses one microtask
 * later keeps the order the server sent. Call after client.connect(), which installs onmessage.
 */
export function keepProgressBeforeResponses(transport: Transport): void {
  const deliver = transport.onmessage;
  if (!deliver) return;
  transport.onmessage = (message, extra) => {
    if ('id' in message && !('method' in message))
      queueMicrotask(() => deliver.call(transport, message, extra));
    else deliver.call(transport, message, extra);
  };
}
