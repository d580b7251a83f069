// Apollo Client's own PersistedQueryLink against the gateway (tests/test_persisted_documents.py).
//
//   node apq.mjs URL QUERY_BY_POST QUERY_BY_GET     (LEADGATE_API_KEY in the environment)
//
// Runs QUERY_BY_POST twice through a PersistedQueryLink that POSTs, then QUERY_BY_GET twice
// through one with useGETForHashedQueries, and prints one JSON line per result:
// {"client": "post" | "get", "run": 1 | 2, "data": …}. Each first run meets an unknown hash
// (the link then resends the document), each second run sends the hash alone.
import { createHash } from "node:crypto";

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url, byPost, byGet] = process.argv.slice(2);
const headers = { authorization: `Bearer ${process.env.LEADGATE_API_KEY}` };
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function client(useGETForHashedQueries) {
  const persisted = new PersistedQueryLink({ sha256, useGETForHashedQueries });
  return new ApolloClient({
    link: persisted.concat(new HttpLink({ uri: url, headers })),
    cache: new InMemoryCache(),
  });
}

for (const [name, source, useGET] of [
  ["post", byPost, false],
  ["get", byGet, true],
]) {
  const apollo = client(useGET);
  const query = gql(source);
  for (const run of [1, 2]) {
    // network-only: the second run must reach the server, not Apollo's cache.
    const result = await apollo.query({ query, fetchPolicy: "network-only" });
    console.log(JSON.stringify({ client: name, run, data: result.data }));
  }
}
