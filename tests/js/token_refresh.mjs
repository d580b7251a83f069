// README "Frontend apps", WebSockets, as written there: graphql-ws with an async
// connectionParams that fetches a fresh token for every connection, and a subscription that,
// closed with 4401 when its token expires, subscribes again with `after` the last event id.
//
//   node token_refresh.mjs <ws-url> <token-url> <lead-id> <count>
//
// Prints {"event": …} per delivery and {"closed": 4401} per expiry as JSON lines; exits 0
// after <count> events, 1 on any other error.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, tokenUrl, leadId, count] = process.argv.slice(2);
const out = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
let received = 0;

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  connectionParams: async () => {
    const response = await fetch(tokenUrl);
    return { Authorization: `Bearer ${await response.text()}` };
  },
});

let after = null;

function watch() {
  client.subscribe(
    {
      query: `subscription($leadId: ID, $after: ID) {
        leadStageChanged(leadId: $leadId, after: $after) { eventId toStage { stageKey } } }`,
      variables: { leadId, after },
    },
    {
      next: ({ data }) => {
        after = data.leadStageChanged.eventId;
        out({ event: data.leadStageChanged });
        received += 1;
        if (received >= Number(count)) client.dispose();
      },
      error: (err) => {
        if (err?.code === 4401) {
          out({ closed: 4401 });
          watch();
        } else {
          console.error("error", err instanceof Error ? err.message : JSON.stringify(err));
          process.exitCode = 1;
          client.dispose();
        }
      },
      complete: () => {},
    },
  );
}
watch();
