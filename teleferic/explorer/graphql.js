// The two ways the page talks to the gateway: GraphQL over HTTP POST, and
// subscriptions over WebSocket with the graphql-transport-ws protocol.

export class GraphQLError extends Error {
  constructor(errors) {
    const first = errors[0] ?? {};
    super(first.message ?? 'GraphQL error');
    this.code = first.extensions?.code;
  }
}

/** A GraphQL client for `endpoint` (a path or an absolute URL). */
export function client(endpoint) {
  const httpUrl = new URL(endpoint, location.href);
  const wsUrl = new URL(httpUrl);
  wsUrl.protocol = httpUrl.protocol === 'https:' ? 'wss:' : 'ws:';

  async function query(text, variables = {}) {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query: text, variables }),
    });
    const body = await response.json();
    if (body.errors?.length) throw new GraphQLError(body.errors);
    return body.data;
  }

  /**
   * Subscribes over graphql-transport-ws. `on` gets `open()`, `next(data)`,
   * `error(message)` and `closed(reason)`; the returned function unsubscribes.
   */
  function subscribe(text, variables, on) {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    let acknowledged = false;
    let ended = false;
    const end = (reason) => {
      if (!ended) {
        ended = true;
        on.closed(reason);
      }
    };
    const send = (message) => socket.send(JSON.stringify(message));
    socket.onopen = () => send({ type: 'connection_init', payload: {} });
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return socket.close(4400, 'not JSON');
      }
      switch (message.type) {
        case 'connection_ack':
          acknowledged = true;
          send({ id: '1', type: 'subscribe', payload: { query: text, variables } });
          on.open();
          break;
        case 'ping':
          send({ type: 'pong' });
          break;
        case 'next':
          if (message.payload?.errors?.length) on.error(message.payload.errors[0].message);
          else on.next(message.payload.data);
          break;
        case 'error':
          on.error((message.payload ?? []).map((e) => e.message).join('; ') || 'subscription refused');
          end('the server refused the subscription');
          socket.close(1000);
          break;
        case 'complete':
          end('the server ended the subscription');
          socket.close(1000);
          break;
      }
    };
    socket.onclose = (event) =>
      end(acknowledged ? `connection closed (${event.code})` : 'the server does not accept graphql-transport-ws');
    return () => {
      ended = true;
      if (socket.readyState === WebSocket.OPEN) send({ id: '1', type: 'complete' });
      socket.close(1000);
    };
  }

  return { query, subscribe, httpUrl, wsUrl };
}
