// A subscriber made with the npm `graphql-sse` client (distinct connections mode), as a
// browser app would use it where WebSockets are blocked.
//
//   LEADGATE_API_KEY=lw_live_… node sse.mjs <http-url> <count> <query> [variables-json]
//
// Prints each `next` payload as one JSON line on stdout and exits 0 after <count> of them;
// an error or an early completion exits 1.
import { createClient } from "graphql-sse";

const [url, count, query, variables = "{}"] = process.argv.slice(2);
const wanted = Number(count);
let received = 0;

const client = createClient({
  url,
  headers: { Authorization: `Bearer ${process.env.LEADGATE_API_KEY}` },
  retryAttempts: 0,
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
