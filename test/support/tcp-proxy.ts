/**
 * A TCP proxy between a client and a server, for injecting connection faults at exact points:
 * after the server has answered a request but before the client gets the answer (the outcome
 * is then unknown to the client), or before the request reaches the server.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ProxyFault {
  /** Fires on the first client→server chunk containing this text (for example a statement name). */
  match: string;
  /**
   * `before-server`: drop that chunk and cut the connection (the server never sees it).
   * `after-server`: let it through, then cut the connection as soon as the server answers,
   * dropping the answer.
   */
  when: 'before-server' | 'after-server';
}

export interface TcpProxy {
  readonly port: number;
  /** How many client→server chunks so far contained `text` (to see what the client sends). */
  sent(text: string): number;
  /** Arms a fault; resolves when it has fired. */
  fault(fault: ProxyFault): Promise<void>;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (a free port) to `host:port`. */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  let armed: (ProxyFault & { fired: () => void }) | undefined;
  const sentChunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, host);
    sockets.add(client);
    sockets.add(upstream);
    let cutOnAnswer: (() => void) | undefined;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      sentChunks.push(chunk);
      const fault = armed;
      if (fault && chunk.includes(fault.match)) {
        armed = undefined;
        if (fault.when === 'before-server') {
          cut();
          fault.fired();
          return;
        }
        cutOnAnswer = () => {
          cut();
          fault.fired();
        };
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (cutOnAnswer) return cutOnAnswer();
      client.write(chunk);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', cut);
      socket.on('close', () => {
        sockets.delete(socket);
        cut();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    sent: (text) => sentChunks.filter((chunk) => chunk.includes(text)).length,
    fault(fault) {
      return new Promise<void>((resolve) => {
        armed = { ...fault, fired: resolve };
      });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
