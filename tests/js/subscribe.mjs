// A subscriber made with the JS `graphql-ws` client, as a browser app would use it.
//
//   LEADGATE_API_KEY=lw_live_… node subscribe.mjs <ws-url> <count> <query> [variables-json]
//
// Prints each `next` payload as one JSON line on stdout and exits 0 after <count> of them;
// connection events go to stderr; an error or an early close exits 1.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, count, query, variables = "{}"] = process.argv.slice(2);
const wanted = Number(count);
let received = 0;

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${process.env.LEADGATE_API_KEY}` },
  lazy: false,
  retryAttempts: 0,
  on: {
    connected: () => console.error("connected"),
    closed: (event) => console.error(`closed ${event?.code ?? ""} ${event?.reason ?? ""}`),
  },
});

function finish(code) {
  process.exitCode = code;
  client.dispose();
}

client.subscribe(
  { query, variables: JSON.parse(variables) },
  {
    next: (payload) => {
      process.stdout.write(`${JSON.stringify(payload)}\n`);
      received += 1;
      if (received >= wanted) finish(0);
    },
    error: (error) => {
      console.error("error", error instanceof Error ? error.message : JSON.stringify(error));
      finish(1);
    },
    complete: () => finish(received >= wanted ? 0 : 1),
  },
);

process.on("SIGTERM", () => finish(143));
