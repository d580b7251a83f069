// PostGraphile 5 as bench/run.py runs it: the amber preset over the public schema, reads only.
// DATABASE_URL comes from the environment (never argv, so no password in the process list).
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

// Without the Node interface a table's `id` column is no longer in Relay's way: keep its name
// (amber renames it `rowId`, and `ROW_ID_DESC`), so PostGraphile 4's query runs unchanged.
const PlainIdPlugin = {
  name: "BenchPlainIdPlugin",
  version: "0.0.0",
  after: ["PgAttributesPlugin"],
  inflection: {
    replace: {
      _attributeName(previous, options, details) {
        return previous({ ...details, skipRowId: true });
      },
    },
  },
};

/** @type {GraphileConfig.Preset} */
export default {
  extends: [PostGraphileAmberPreset],
  plugins: [PlainIdPlugin],
  disablePlugins: [
    "NodePlugin",
    // No CRUD mutations, as PostGraphile 4 runs with --disable-default-mutations (volatile
    // functions stay mutations in both).
    "PgMutationCreatePlugin",
    "PgMutationUpdateDeletePlugin",
  ],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: Number(process.env.BENCH_POOL_SIZE ?? 8) },
      // No subscriptions, so no LISTEN connection.
      pubsub: false,
    }),
  ],
  grafserv: {
    graphqlPath: "/graphql",
    graphiql: false,
    websockets: false,
  },
  grafast: { explain: false },
};
