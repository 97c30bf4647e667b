/** The part of an engine.io connection the backlog reads: packets waiting for the transport. */
interface Connection {
  writeBuffer: { data?: unknown }[];
}

export interface Backlog {
  packets: number;
  /** Encoded size of the packets (string length for text, byte length for binary). */
  bytes: number;
}

const sizeOf = (data: unknown): number =>
  typeof data === 'string' ? data.length : ArrayBuffer.isView(data) ? data.byteLength : 0;

/**
 * What a socket has queued and not yet handed to its transport. engine.io replaces its write buffer with a
 * new array on each flush, so the packets of one array are counted once each, as they are added: measuring is
 * O(1) per packet however long the backlog grows.
 */
export function writeBacklog(conn: unknown): { measure(): Backlog } {
  const c = conn as Connection;
  let seen: unknown[] | undefined;
  let counted = 0;
  let bytes = 0;
  return {
    measure() {
      const buffer = c.writeBuffer;
      if (buffer !== seen) {
        seen = buffer;
        counted = 0;
        bytes = 0;
      }
      for (; counted < buffer.length; counted++) bytes += sizeOf(buffer[counted]?.data);
      return { packets: buffer.length, bytes };
    },
  };
}
