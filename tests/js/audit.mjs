// The graphql-http package's server audits (GraphQL-over-HTTP conformance), run against a URL.
//
//   LEADGATE_API_KEY=lw_live_… node audit.mjs <http-url>    run every audit
//   node audit.mjs --list                                   list the audits, run nothing
//
// Prints one JSON line per audit on stdout, in the package's order:
//   {id, name, status: "ok" | "notice" | "warn" | "error", reason, request, response}
// `request` and `response` (status, content type, first 500 characters of the body) are the
// last exchange the audit made, so a failure can be read without rerunning it. An audit that
// crashes (not a failed assertion) is reported as "error" with the exception as its reason.
import { serverAudits } from "graphql-http";

const BODY_PREVIEW = 500;
const [target] = process.argv.slice(2);
if (!target) {
  console.error("usage: node audit.mjs <http-url> | --list");
  process.exit(2);
}

let last = null;

// /graphql requires a key: every audit request carries it. The audits' own headers are kept,
// and a request that sets none keeps none (some audits test a missing Accept or Content-Type).
async function authorizedFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${process.env.LEADGATE_API_KEY ?? ""}`);
  const response = await fetch(input, { ...init, headers });
  const text = await response.clone().text();
  last = {
    request: {
      method: init.method ?? "GET",
      url: String(input),
      accept: headers.get("accept"),
      contentType: headers.get("content-type"),
      body: typeof init.body === "string" ? init.body.slice(0, BODY_PREVIEW) : null,
    },
    response: {
      status: response.status,
      contentType: response.headers.get("content-type"),
      body: text.slice(0, BODY_PREVIEW),
    },
  };
  return response;
}

const audits = serverAudits({ url: target, fetchFn: authorizedFetch });
if (target === "--list") {
  for (const { id, name } of audits) process.stdout.write(`${JSON.stringify({ id, name })}\n`);
  process.exit(0);
}

for (const audit of audits) {
  last = null;
  let result;
  try {
    result = await audit.fn();
  } catch (error) {
    result = { id: audit.id, name: audit.name, status: "error", reason: `crashed: ${error}` };
  }
  const line = {
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.reason ?? null,
    request: last?.request ?? null,
    response: last?.response ?? null,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
