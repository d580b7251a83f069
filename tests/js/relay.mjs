// Apollo Client's relayStylePagination over leadsConnection (tests/test_keyset_cursors.py).
//
//   node relay.mjs URL SIZE     (LEADGATE_API_KEY in the environment)
//
// Watches the first SIZE leads, then calls fetchMore with the merged pageInfo's endCursor
// until hasNextPage is false, and prints one JSON line: the merged edges' node ids, in the
// order the cache holds them, the number of pages fetched, and the merged totalCount.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { relayStylePagination } from "@apollo/client/utilities";

const [url, size] = process.argv.slice(2);
const headers = { authorization: `Bearer ${process.env.LEADGATE_API_KEY}` };

const LEADS = gql`
  query Leads($first: Int!, $after: String) {
    leadsConnection(first: $first, after: $after) {
      edges { cursor node { id businessName } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      totalCount
    }
  }
`;

const client = new ApolloClient({
  link: new HttpLink({ uri: url, headers }),
  cache: new InMemoryCache({
    typePolicies: {
      // The arguments that name a different list; first/after only say where a page is.
      Query: { fields: { leadsConnection: relayStylePagination(["search", "filter", "updatedSince"]) } },
    },
  }),
});

const watched = client.watchQuery({ query: LEADS, variables: { first: Number(size) } });
// Subscribed throughout, as a component would be: fetchMore merges into what it watches.
const firstPage = new Promise((resolve, reject) => {
  watched.subscribe({
    next(result) {
      if (result.data && result.dataState === "complete") resolve();
    },
    error: reject,
  });
});
await firstPage;
// What the cache holds under the field's key: every page merged by relayStylePagination.
const merged = () =>
  client.readQuery({ query: LEADS, variables: { first: Number(size) } }).leadsConnection;

let pages = 1;
while (merged().pageInfo.hasNextPage) {
  await watched.fetchMore({ variables: { after: merged().pageInfo.endCursor } });
  pages += 1;
  if (pages > 1000) throw new Error("hasNextPage never became false");
}
const connection = merged();
console.log(
  JSON.stringify({
    ids: connection.edges.map((edge) => edge.node.id),
    pages,
    totalCount: connection.totalCount,
  }),
);
client.stop();
