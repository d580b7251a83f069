-- One POST body for every request (wrk builds the request once: no Lua per request).
-- wrk -s static.lua URL -- BODY_FILE [AUTHORIZATION]
-- A response counts as bad unless it is a 200 without a top-level GraphQL "errors" key.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[2] and args[2] ~= "" then
    wrk.headers["Authorization"] = args[2]
  end
  bad = 0
  sample = ""
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors":', 1, true) then
    bad = bad + 1
    if sample == "" then sample = string.sub(body, 1, 300) end
  end
end

-- A body excerpt as the inside of a JSON string.
function json_string(text)
  text = string.gsub(text, "%c", " ")
  text = string.gsub(text, "\\", "\\\\")
  return (string.gsub(text, '"', '\\"'))
end

function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    if first == "" then first = thread:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"socket_errors":%d,"status_errors":%d,"bad":%d,' ..
    '"sample":"%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect + e.read + e.write + e.timeout, e.status, bad_total,
    json_string(first)))
end
